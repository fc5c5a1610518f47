-- Job statistics (GET /v1/statistics/jobs): how many jobs were submitted
-- per UTC day, queue and submitter, counted in the transaction that stores
-- each job. Retention never deletes them: they outlive the jobs.
CREATE TABLE job_statistics (
    day          TEXT NOT NULL,    -- YYYY-MM-DD (UTC) of the jobs' created_at
    queue        TEXT NOT NULL,
    submitted_by TEXT NOT NULL,    -- the client_id; '' for anonymous jobs
    count        INTEGER NOT NULL,
    PRIMARY KEY (day, queue, submitted_by)
) WITHOUT ROWID;
