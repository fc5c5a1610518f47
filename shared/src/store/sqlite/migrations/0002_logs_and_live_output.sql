CREATE TABLE logs (
    job_id          TEXT NOT NULL,
    log_type        TEXT NOT NULL,
    fragment_number INTEGER NOT NULL,
    phase           TEXT NOT NULL,
    timestamp       INTEGER NOT NULL,   -- the agent's time, ms
    log_data        TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,   -- the server's time, ms
    PRIMARY KEY (job_id, log_type, fragment_number)
) WITHOUT ROWID;
CREATE INDEX logs_updated ON logs (updated_at);

CREATE TABLE live_output (
    seq        INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    text       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX live_output_by_job ON live_output (job_id, stream, seq);
