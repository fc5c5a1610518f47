//! Results and live output: what agents post about a running job, what
//! clients read back.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{App, Caller};
use crate::events::result_events;
use crate::job::Job;
use crate::logs::{validate_fragment, LegacyStream, LogFragment, LogQuery, LogTail, LogType};
use crate::permissions;
use crate::results::validate_result;
use crate::role::AuthMode;
use crate::{Error, Result, Timestamp};

/// A job's result with the end of each phase's logs, for `GET /v1/result/{id}`.
#[derive(Debug)]
pub struct JobResult {
    pub job: Job,
    /// Each log type's phases, each at most `TESTFLINGER_RESULT_LOG_TAIL`
    /// bytes: the end of the log, and where it was cut if it was.
    pub logs: Vec<(LogType, Vec<LogTail>)>,
}

fn job_not_found(job_id: Uuid) -> Error {
    Error::NotFound(format!("Job {job_id} not found."))
}

impl App {
    /// Outside the open mode, whether the caller may post about the job
    /// ([`permissions::may_report_on_job`]: its claimer or an admin). An
    /// unknown job passes, for the store's own answer (404) to stand.
    pub(super) async fn check_job_reporter(&self, caller: &Caller, job_id: Uuid) -> Result<()> {
        let mode = self.settings.auth_mode;
        if mode == AuthMode::Open {
            return Ok(());
        }
        match self.store.get_job(job_id).await? {
            Some(job) => permissions::may_report_on_job(caller, mode, &job),
            None => Ok(()),
        }
    }

    /// `POST /v1/result/{id}`: merges the result; a reported state moves
    /// the job unless it is terminal (then it is only recorded).
    pub async fn post_result(
        &self,
        caller: &Caller,
        job_id: Uuid,
        body: Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        let patch = validate_result(body)?;
        self.check_job_reporter(caller, job_id).await?;
        self.hold_lease(caller, job_id, now).await?;
        let Some(change) = self.store.apply_result(job_id, &patch, now).await? else {
            return Err(job_not_found(job_id));
        };
        let posted_status = patch.fields.get("status").and_then(Value::as_object);
        let events = result_events(&change, posted_status, now);
        self.record(job_id, &events, now).await;
        if change.after.is_terminal() && !change.before.is_terminal() {
            crate::metrics::count(
                crate::metrics::JOBS_FINISHED,
                &[("state", change.after.as_str())],
                1,
            );
            if let Some(agent) = &change.agent_id {
                self.link_agent(agent, job_id, None, now).await;
            }
        }
        Ok(())
    }

    /// `GET /v1/result/{id}`: `None` for an unknown job. Each phase's log
    /// is its last `TESTFLINGER_RESULT_LOG_TAIL` bytes, read from the end,
    /// so the answer and the memory it takes stay bounded.
    /// A read by the agent holding the job's lease (its cancel check) renews it.
    pub async fn get_result(
        &self,
        caller: &Caller,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<JobResult>> {
        self.touch_lease(caller, job_id, now).await;
        let Some(job) = self.store.get_job(job_id).await? else {
            return Ok(None);
        };
        let tail = self.settings.limits.result_log_tail;
        let output = self
            .store
            .read_log_tails(job_id, LogType::Output, tail)
            .await?;
        let serial = self
            .store
            .read_log_tails(job_id, LogType::Serial, tail)
            .await?;
        Ok(Some(JobResult {
            job,
            logs: vec![(LogType::Output, output), (LogType::Serial, serial)],
        }))
    }

    /// `GET /v1/result/{id}/status`: the job (the view keeps its state and
    /// statuses); `None` for an unknown job. Like [`App::get_result`], a
    /// read by the agent holding the lease renews it.
    pub async fn get_status(
        &self,
        caller: &Caller,
        job_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Job>> {
        self.touch_lease(caller, job_id, now).await;
        self.store.get_job(job_id).await
    }

    /// `POST /v1/result/{id}/log/{type}`: one fragment; a resend of a
    /// stored fragment number changes nothing.
    pub async fn post_log(
        &self,
        caller: &Caller,
        job_id: Uuid,
        log_type: &str,
        body: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<()> {
        let log_type = LogType::parse(log_type)?;
        let fragment = validate_fragment(body, self.settings.limits.log_fragment)?;
        self.check_job_reporter(caller, job_id).await?;
        self.hold_lease(caller, job_id, now).await?;
        if self
            .store
            .append_log(job_id, log_type, &fragment, now)
            .await?
        {
            Ok(())
        } else {
            Err(job_not_found(job_id))
        }
    }

    /// `GET /v1/result/{id}/log/{type}`: the fragments from the query's
    /// `start_fragment` on, in order; the view filters by phase and time.
    pub async fn get_log(
        &self,
        job_id: Uuid,
        log_type: LogType,
        query: &LogQuery,
    ) -> Result<Vec<LogFragment>> {
        self.store
            .read_logs(job_id, log_type, query.start_fragment)
            .await
    }

    /// `POST /v1/result/{id}/output` (legacy): appends raw text.
    pub async fn append_live_output(
        &self,
        caller: &Caller,
        job_id: Uuid,
        stream: LegacyStream,
        text: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.check_job_reporter(caller, job_id).await?;
        self.hold_lease(caller, job_id, now).await?;
        if self
            .store
            .append_live_output(job_id, stream, text, now)
            .await?
        {
            Ok(())
        } else {
            Err(job_not_found(job_id))
        }
    }

    /// `GET /v1/result/{id}/output` (legacy): what is new since the last
    /// read, consumed by this read; `None` when nothing is new.
    pub async fn take_live_output(
        &self,
        job_id: Uuid,
        stream: LegacyStream,
    ) -> Result<Option<String>> {
        self.store.take_live_output(job_id, stream).await
    }
}
