-- Claim leases (SPEC.md §11): until when the claiming agent holds the job
-- without a word (ms since the epoch; NULL before the first claim, after a
-- lease ran out, and for jobs claimed before leases), which agent holds it,
-- how many claims the job had (the claim's token: every move of the lease
-- compares it), and the agent the next claim passes over after its lease
-- ran out.
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
ALTER TABLE jobs ADD COLUMN lease_holder TEXT;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN passed_over TEXT;

-- The lease sweep: only the leases of jobs still running are indexed (a
-- finished job keeps its last lease, out of this index).
CREATE INDEX jobs_lease ON jobs (lease_until)
    WHERE lease_until IS NOT NULL AND state NOT IN ('waiting', 'complete', 'completed', 'cancelled');
