-- Jobs still waiting for attachments are not claimable: kept out of the
-- claim index, no claim walks past them.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (job_queue, job_priority DESC, seq)
    WHERE state = 'waiting' AND (attachments_status IS NULL OR attachments_status = 'complete');
