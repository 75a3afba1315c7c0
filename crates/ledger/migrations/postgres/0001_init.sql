-- cxguard ledger, PostgreSQL. Applied once, in one transaction.
CREATE TABLE cxguard_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_entries (
    seq        BIGINT PRIMARY KEY,
    at         TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    operation  TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    details    TEXT   NOT NULL,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);
CREATE INDEX audit_entries_operation ON audit_entries (operation);
CREATE INDEX audit_entries_target ON audit_entries (target);

CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,
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
    job_id      TEXT   NOT NULL REFERENCES jobs (id),
    item_key    TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    state       TEXT   NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    result      TEXT,
    updated_at  TEXT   NOT NULL,
    PRIMARY KEY (job_id, item_key)
);
CREATE INDEX job_items_state ON job_items (job_id, state, position);

CREATE TABLE outbox (
    id               TEXT   PRIMARY KEY,
    seq              BIGSERIAL UNIQUE,
    kind             TEXT   NOT NULL,
    event_type       TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL,
    lease_until_ms   BIGINT,
    lease_token      TEXT,
    last_error       TEXT,
    created_at       TEXT   NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
