-- Agent liveness (SPEC.md §11): when the agent itself last spoke (ms since
-- the epoch), apart from updated_at, which an admin's command also moves.
-- Agents stored before start from their last update.
ALTER TABLE agents ADD COLUMN last_heard INTEGER;
UPDATE agents SET last_heard = updated_at;
