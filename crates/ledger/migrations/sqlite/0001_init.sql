-- cxguard ledger, SQLite. Applied once, in one transaction.
-- The outbox is ordered by its implicit rowid (PostgreSQL: a seq column).
CREATE TABLE cxguard_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_entries (
    seq        INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    operation  TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_entries_operation ON audit_entries (operation);
CREATE INDEX audit_entries_target ON audit_entries (target);

CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

-- The signed head: the latest entry, signed at every append, so a log cut short after
-- its last checkpoint is detected.
CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    at         TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    params      TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE job_items (
    job_id      TEXT    NOT NULL REFERENCES jobs (id),
    item_key    TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    result      TEXT,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (job_id, item_key)
);
CREATE INDEX job_items_state ON job_items (job_id, state, position);

CREATE TABLE outbox (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    lease_until_ms   INTEGER,
    lease_token      TEXT,
    last_error       TEXT,
    created_at       TEXT    NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
