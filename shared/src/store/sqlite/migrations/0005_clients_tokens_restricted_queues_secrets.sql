-- Clients and their permissions, refresh tokens (by hash), restricted
-- queues with their owners, and sealed secrets.
CREATE TABLE client_permissions (
    client_id            TEXT PRIMARY KEY,
    client_secret_hash   TEXT NOT NULL,
    role                 TEXT NOT NULL,
    max_priority         TEXT NOT NULL DEFAULT '{}',   -- JSON object: queue -> integer
    allowed_queues       TEXT NOT NULL DEFAULT '[]',   -- JSON list
    max_reservation_time TEXT NOT NULL DEFAULT '{}'    -- JSON object: queue -> seconds
) WITHOUT ROWID;

CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    last_accessed INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- A restriction outlives its owners (deleting a client must not open a
-- queue), so the queue and its owners are separate tables.
CREATE TABLE restricted_queues (
    queue_name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE restricted_queue_owners (
    queue_name TEXT NOT NULL REFERENCES restricted_queues (queue_name) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    PRIMARY KEY (queue_name, client_id)
) WITHOUT ROWID;
CREATE INDEX restricted_queue_owners_by_client ON restricted_queue_owners (client_id);

CREATE TABLE secrets (
    client_id  TEXT NOT NULL,
    path       TEXT NOT NULL,
    value      BLOB NOT NULL,      -- sealed: nonce, ciphertext and tag
    expires_at INTEGER,            -- NULL: never
    ephemeral  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, path)
) WITHOUT ROWID;
CREATE INDEX secrets_expiry ON secrets (expires_at) WHERE expires_at IS NOT NULL;
