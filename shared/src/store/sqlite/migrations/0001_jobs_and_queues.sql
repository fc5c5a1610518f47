CREATE TABLE jobs (
    seq                INTEGER PRIMARY KEY,   -- insertion order: FIFO among equal priorities
    job_id             TEXT NOT NULL UNIQUE,
    job_queue          TEXT NOT NULL,
    job_priority       INTEGER NOT NULL,
    state              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,      -- ms since the epoch
    started_at         INTEGER,
    attachments_status TEXT,
    exclude_agents     TEXT,                  -- JSON list, NULL when empty
    job_data           TEXT NOT NULL,         -- the submission, JSON
    result_data        TEXT NOT NULL DEFAULT '{}',
    updated_at         INTEGER NOT NULL
);
-- Serves the claim: per queue, waiting jobs in claim order.
CREATE INDEX jobs_claim ON jobs (job_queue, job_priority DESC, seq) WHERE state = 'waiting';
CREATE INDEX jobs_created ON jobs (created_at);


CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    description TEXT,
    images      TEXT,
    updated_at  INTEGER NOT NULL
);
