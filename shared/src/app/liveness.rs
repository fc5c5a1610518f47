//! Agent liveness (SPEC.md §11): when each agent was last heard from, and
//! which agents listings show as silent.
//!
//! An agent is heard from when it speaks for itself: its claims, its own
//! data and provision-log posts, its posts and cancel checks about the job
//! it holds, and its reads of its own data (all an agent commanded offline
//! still does). Another client's reads and an admin's command do not
//! count, and neither does a request whose caller may not act as that
//! agent.
//!
//! Recording is cheap: each process writes an agent's `last_heard` at most
//! once per [`App::heard_every`] (one minute by default), from what it
//! wrote last or what a read it made anyway showed; the idle poll costs no
//! write in between. Listings show an agent silent once it has not been
//! heard from for `TESTFLINGER_AGENT_OFFLINE_SECONDS`, so what they show
//! lags the truth by at most that interval.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{App, Caller};
use crate::agents::Agent;
use crate::role::{AuthMode, Role};
use crate::Timestamp;

/// Agents a process remembers writing for; past this, it starts over
/// (which costs at most one more write per agent).
const REMEMBERED_AGENTS: usize = 100_000;

/// When this process last wrote each agent's `last_heard`.
#[derive(Debug, Default)]
pub(super) struct HeardCache {
    written: Mutex<HashMap<String, Timestamp>>,
}

impl HeardCache {
    /// Whether a write for `agent` at `now` is due, given what this
    /// process wrote and what a read showed (`stored`).
    fn due(&self, agent: &str, stored: Option<Timestamp>, now: Timestamp, every: i64) -> bool {
        let written = self.lock().get(agent).copied();
        let last = written.max(stored);
        last.is_none_or(|last| now.millis() - last.millis() >= every)
    }

    fn remember(&self, agent: &str, now: Timestamp) {
        let mut written = self.lock();
        if written.len() >= REMEMBERED_AGENTS && !written.contains_key(agent) {
            written.clear();
        }
        written.insert(agent.to_owned(), now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        // A poisoned map is still a valid map of instants.
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl App {
    /// How often a process writes an agent's `last_heard` at most: a fifth
    /// of the offline threshold, one minute at most.
    pub fn heard_every_millis(&self) -> i64 {
        let offline = i64::try_from(self.settings.leases.agent_offline_seconds).unwrap_or(i64::MAX);
        (offline.saturating_mul(1000) / 5).min(60_000)
    }

    /// The instant before which an agent last heard from is silent.
    pub fn offline_before(&self, now: Timestamp) -> Timestamp {
        let offline = i64::try_from(self.settings.leases.agent_offline_seconds).unwrap_or(i64::MAX);
        now.plus_seconds(-offline)
    }

    /// Records that `agent` spoke at `now`, writing only when due;
    /// `stored`: its `last_heard` from a read the caller made anyway. A
    /// failed write is logged, never the request's failure.
    pub(super) async fn heard_from(&self, agent: &str, stored: Option<Timestamp>, now: Timestamp) {
        if !self
            .heard
            .due(agent, stored, now, self.heard_every_millis())
        {
            return;
        }
        match self.store.mark_heard(agent, now).await {
            Ok(()) => self.heard.remember(agent, now),
            Err(error) => tracing::warn!(agent, error = %error, "agent liveness not recorded"),
        }
    }

    /// A write of the agent's own data stores `last_heard` itself: remember
    /// it so that the next poll does not write again.
    pub(super) fn heard_in_write(&self, agent: &str, now: Timestamp) {
        self.heard.remember(agent, now);
    }

    /// A read of an agent's data: when the reader is that agent (its
    /// cookie names it and it may act as it), the agent is heard from.
    pub(super) async fn heard_reading_itself(
        &self,
        caller: &Caller,
        agent: &Agent,
        now: Timestamp,
    ) {
        if caller.agent.as_deref() != Some(agent.name.as_str())
            || !self.heard.due(
                &agent.name,
                agent.last_heard,
                now,
                self.heard_every_millis(),
            )
        {
            return;
        }
        let speaks_for_itself = match self.settings.auth_mode {
            // The open mode has no identities: the cookie is all there is.
            AuthMode::Open => caller.role().is_none_or(|r| r == Role::Agent),
            _ => {
                caller.role() == Some(Role::Agent)
                    && self
                        .check_agent_identity(
                            caller,
                            &agent.name,
                            super::agents::Binding::CheckOnly,
                            now,
                        )
                        .await
                        .is_ok()
            }
        };
        if speaks_for_itself {
            self.heard_from(&agent.name, agent.last_heard, now).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_due_once_per_interval_from_the_latest_known_time() {
        let cache = HeardCache::default();
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        assert!(cache.due("a", None, at(100), 60_000));
        assert!(!cache.due("a", Some(at(90)), at(100), 60_000));
        assert!(cache.due("a", Some(at(40)), at(100), 60_000));
        cache.remember("a", at(100));
        assert!(!cache.due("a", Some(at(0)), at(159), 60_000));
        assert!(cache.due("a", Some(at(0)), at(160), 60_000));
        assert!(cache.due("b", None, at(100), 60_000));
    }
}
