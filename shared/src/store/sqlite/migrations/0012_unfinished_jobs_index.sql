-- Metrics and the overview count unfinished jobs per queue and state: an
-- index over unfinished jobs only keeps that cost to the jobs waiting and
-- running, whatever the history kept.
CREATE INDEX jobs_unfinished ON jobs (state, job_queue)
    WHERE state NOT IN ('complete', 'completed', 'cancelled');
