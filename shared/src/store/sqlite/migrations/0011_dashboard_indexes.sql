-- The dashboard's reads (issue 14), each served by an index:
-- the unfinished jobs counted per queue and state (the overview, queues),
CREATE INDEX jobs_active ON jobs (job_queue, state)
    WHERE state NOT IN ('complete', 'completed', 'cancelled');
-- a queue's jobs newest first (the job search narrowed to a queue),
CREATE INDEX jobs_by_queue_newest ON jobs (job_queue, created_at, job_id);
-- a submitter's jobs newest first (the job search narrowed to a client).
CREATE INDEX jobs_by_submitter ON jobs (json_extract(job_data, '$.client_id'), created_at, job_id);
