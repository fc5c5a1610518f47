//! Login throttling: failed logins slow down whoever keeps failing, by
//! client id and by source address, without a slow hash spent on them.
//!
//! A few failures are free (a mistyped secret, a CI job with an old one).
//! After that each further failure closes the door for twice as long as
//! the last, and while it is closed a login for that client id, or from
//! that address, is answered 429 with `Retry-After` before its secret is
//! checked. The address gets more free failures than a client id, as many
//! clients may share one (a lab behind NAT). A successful login forgets
//! the client id's failures; failures are forgotten after a quiet
//! [`FORGET_AFTER`]. The record lives in the process: under Lambda each
//! warm instance keeps its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::{Error, Timestamp};

/// Failures free of any wait, per client id.
pub const CLIENT_FREE_FAILURES: u32 = 5;
/// Failures free of any wait, per source address.
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// The longest wait for a client id: long enough to make guessing hopeless,
/// short enough that someone who locks out another's client id does not
/// keep it out for long.
pub const CLIENT_MAX_WAIT_SECONDS: i64 = 60;
/// The longest wait for an address.
pub const ADDRESS_MAX_WAIT_SECONDS: i64 = 300;
/// Failures older than this (with none since) are forgotten.
pub const FORGET_AFTER_SECONDS: i64 = 600;
/// At most this many ids and addresses are remembered; over it, the quiet
/// ones go first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last_failure: Timestamp,
    closed_until: Timestamp,
}

/// The failed logins this process remembers.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Strikes>>,
}

impl LoginThrottle {
    /// 429 when the client id or the address must wait before trying again.
    pub fn check(
        &self,
        client_id: &str,
        address: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys(client_id, address)
            .filter_map(|key| entries.get(&key))
            .map(|strikes| strikes.closed_until.millis() - now.millis())
            .max()
            .unwrap_or(0);
        if wait <= 0 {
            return Ok(());
        }
        let retry_after = u64::try_from(wait).unwrap_or(1).div_ceil(1000).max(1);
        Err(Error::Throttled {
            message: format!(
                "Too many failed logins for this client id or from this address; try again in \
                 {retry_after} s."
            ),
            retry_after,
        })
    }

    /// Counts a failed login against the client id and the address.
    pub fn failed(&self, client_id: &str, address: Option<IpAddr>, now: Timestamp) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            forget_quiet(&mut entries, now);
        }
        for key in keys(client_id, address) {
            let (free, max_wait) = match key {
                Key::Client(_) => (CLIENT_FREE_FAILURES, CLIENT_MAX_WAIT_SECONDS),
                Key::Address(_) => (ADDRESS_FREE_FAILURES, ADDRESS_MAX_WAIT_SECONDS),
            };
            let strikes = entries.entry(key).or_insert(Strikes {
                failures: 0,
                last_failure: now,
                closed_until: now,
            });
            if now.seconds_since(strikes.last_failure) > FORGET_AFTER_SECONDS {
                strikes.failures = 0;
            }
            strikes.failures = strikes.failures.saturating_add(1);
            strikes.last_failure = now;
            if strikes.failures > free {
                let doublings = (strikes.failures - free - 1).min(20);
                let wait = (1i64 << doublings).min(max_wait);
                strikes.closed_until = now.plus_seconds(wait);
            }
        }
    }

    /// A successful login: the client id's failures are forgotten (the
    /// address's are not: a guesser may hold one valid secret).
    pub fn succeeded(&self, client_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&Key::Client(client_id.to_owned()));
    }
}

fn keys(client_id: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::Client(client_id.to_owned())).chain(address.map(Key::Address))
}

/// Drops what no longer matters; if all still matters, what is not closed.
fn forget_quiet(entries: &mut HashMap<Key, Strikes>, now: Timestamp) {
    entries.retain(|_, s| now.seconds_since(s.last_failure) <= FORGET_AFTER_SECONDS);
    if entries.len() >= MAX_ENTRIES {
        entries.retain(|_, s| s.closed_until.millis() > now.millis());
    }
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + seconds * 1000)
    }

    fn retry_after(result: Result<(), Error>) -> Option<u64> {
        match result {
            Ok(()) => None,
            Err(Error::Throttled { retry_after, .. }) => Some(retry_after),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn a_client_id_waits_twice_as_long_after_each_failure_past_the_free_ones() {
        let throttle = LoginThrottle::default();
        for _ in 0..CLIENT_FREE_FAILURES {
            throttle.failed("ci", None, at(0));
            assert_eq!(retry_after(throttle.check("ci", None, at(0))), None);
        }
        throttle.failed("ci", None, at(0));
        assert_eq!(retry_after(throttle.check("ci", None, at(0))), Some(1));
        throttle.failed("ci", None, at(1));
        assert_eq!(retry_after(throttle.check("ci", None, at(1))), Some(2));
        throttle.failed("ci", None, at(3));
        assert_eq!(retry_after(throttle.check("ci", None, at(3))), Some(4));
        assert_eq!(retry_after(throttle.check("ci", None, at(7))), None);
        // Other clients are not held up.
        assert_eq!(retry_after(throttle.check("other", None, at(3))), None);
        // The wait is capped.
        for n in 0..30 {
            throttle.failed("ci", None, at(10 + n));
        }
        assert_eq!(
            retry_after(throttle.check("ci", None, at(39))),
            Some(CLIENT_MAX_WAIT_SECONDS as u64)
        );
        // A success forgets the client id's failures.
        throttle.succeeded("ci");
        assert_eq!(retry_after(throttle.check("ci", None, at(40))), None);
    }

    #[test]
    fn an_address_guessing_many_client_ids_waits_too() {
        let throttle = LoginThrottle::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let elsewhere: IpAddr = "192.0.2.8".parse().unwrap();
        for n in 0..=ADDRESS_FREE_FAILURES {
            throttle.failed(&format!("guess-{n}"), Some(address), at(0));
        }
        assert_eq!(
            retry_after(throttle.check("anyone", Some(address), at(0))),
            Some(1)
        );
        assert_eq!(
            retry_after(throttle.check("anyone", Some(elsewhere), at(0))),
            None
        );
        assert_eq!(retry_after(throttle.check("anyone", None, at(0))), None);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while() {
        let throttle = LoginThrottle::default();
        for _ in 0..=CLIENT_FREE_FAILURES {
            throttle.failed("ci", None, at(0));
        }
        throttle.failed("ci", None, at(FORGET_AFTER_SECONDS + 1));
        assert_eq!(
            retry_after(throttle.check("ci", None, at(FORGET_AFTER_SECONDS + 1))),
            None
        );
    }
}
