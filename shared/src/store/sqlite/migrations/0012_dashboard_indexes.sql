-- The dashboard's reads (issue 14), each served by an index:
-- the unfinished jobs counted per queue and state (the overview, queues),
CREATE INDEX jobs_active ON jobs (job_queue, state)
    WHERE state NOT IN ('complete', 'completed', 'cancelled');
-- a queue's jobs newest first (the job search narrowed to a queue),
CREATE INDEX jobs_by_queue_newest ON jobs (job_queue, created_at, job_id);
-- a submitter's jobs newest first (the job search narrowed to a client).
CREATE INDEX jobs_by_submitter ON jobs (json_extract(job_data, '$.client_id'), created_at, job_id);
-- Claim waits per queue, newest first, read from the index alone (the
-- wait percentiles of the API and of the dashboard's queues).
CREATE INDEX jobs_waits ON jobs (job_queue, started_at, created_at)
    WHERE started_at IS NOT NULL;
