-- The keys posted to a job's result, one row each: a result post writes
-- only the keys it names, so its cost follows the post, not the size of the
-- result already stored. `jobs.result_data` keeps what the claim writes
-- (`agent_id`) and the results stored before this table; a row wins over a
-- key of the same name there.
CREATE TABLE result_fields (
    job_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,   -- JSON
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;

-- A job's result goes with it (retention deletes jobs).
CREATE TRIGGER jobs_delete_result_fields AFTER DELETE ON jobs
BEGIN
    DELETE FROM result_fields WHERE job_id = OLD.job_id;
END;
