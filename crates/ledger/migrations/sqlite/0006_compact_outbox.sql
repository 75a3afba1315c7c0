-- Webhook events, smaller (issue 16). The events of a job that differ only in what they
-- are about (a contact anonymized, per contact) store that (subject) and the id of the
-- rest of their body, kept once in audit_details, rather than the whole body each. Why
-- an event was skipped is the same for every event of its kind: it is shown, not
-- stored. Only pending events are indexed by when they are due. A new event's webhook
-- id is not stored: it is msg_<outbox_tag>_<seq>, the tag random per ledger. Events
-- enqueued before keep their random ids (column id). AUTOINCREMENT: a number is never
-- used twice, even after `outbox purge --delivered` removed the latest events, so no
-- receiver that drops ids it has seen drops a new event.
CREATE TABLE outbox_v6 (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT,
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
    delivered_at     TEXT,
    template_id      INTEGER,
    subject          TEXT
);
INSERT INTO outbox_v6 (seq, id, kind, event_type, payload, status, attempts, next_attempt_ms,
                       lease_until_ms, lease_token, last_error, created_at, delivered_at)
    SELECT rowid, id, kind, event_type, payload, status, attempts, next_attempt_ms,
           lease_until_ms, lease_token, CASE WHEN status = 'skipped' THEN NULL ELSE last_error END,
           created_at, delivered_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v6 RENAME TO outbox;
CREATE UNIQUE INDEX outbox_id ON outbox (id) WHERE id IS NOT NULL;
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';
INSERT INTO cxguard_meta (key, value) VALUES ('outbox_tag', lower(hex(randomblob(4))));
