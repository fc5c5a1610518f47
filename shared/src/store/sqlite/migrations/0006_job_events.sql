-- Each job's events, in the order they were recorded (at most
-- events::MAX_JOB_EVENTS per job).
CREATE TABLE job_events (
    seq         INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,   -- ms, for retention
    event       TEXT NOT NULL       -- JSON: events::JobEvent::to_value
);
CREATE INDEX job_events_by_job ON job_events (job_id, seq);
CREATE INDEX job_events_recorded ON job_events (recorded_at);
