-- The client whose token claimed each job: only that client (or an admin)
-- posts about the job. NULL before the claim, for an anonymous claim, and
-- for jobs claimed before this column existed.
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;

-- Which client each agent name belongs to, the name folded to lower case
-- (agents::agent_name_key), so that DEV1 and dev1 are one name. Kept apart
-- from the agents table: a name may be owned before its agent registers,
-- and stays owned when the agent's record expires.
CREATE TABLE agent_owners (
    name_key  TEXT PRIMARY KEY,
    name      TEXT NOT NULL,      -- as spelled when it was bound
    client_id TEXT NOT NULL,
    bound_at  INTEGER NOT NULL    -- ms since the epoch
) WITHOUT ROWID;
CREATE INDEX agent_owners_by_client ON agent_owners (client_id);
