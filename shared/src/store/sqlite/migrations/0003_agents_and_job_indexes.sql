CREATE TABLE agents (
    name           TEXT PRIMARY KEY,
    fields         TEXT NOT NULL,           -- JSON object
    log            TEXT NOT NULL DEFAULT '[]',
    updated_at     INTEGER NOT NULL,
    streak_type    TEXT,
    streak_count   INTEGER,
    provision_log  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX agents_updated ON agents (updated_at);
CREATE INDEX jobs_by_queue ON jobs (job_queue, seq);
CREATE INDEX jobs_started ON jobs (started_at) WHERE started_at IS NOT NULL;
CREATE INDEX jobs_newest ON jobs (created_at, job_id);
