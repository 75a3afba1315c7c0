-- Webhook events, smaller (issue 16). The events of a job that differ only in what they
-- are about (a contact anonymized, per contact) store that (subject) and the id of the
-- rest of their body, kept once in audit_details, rather than the whole body each. Why
-- an event was skipped is the same for every event of its kind: it is shown, not
-- stored. Only pending events are indexed by when they are due. A new event's webhook
-- id is not stored: it is msg_<outbox_tag>_<seq>, the tag random per ledger. Events
-- enqueued before keep their random ids (column id).
ALTER TABLE outbox ADD COLUMN template_id BIGINT;
ALTER TABLE outbox ADD COLUMN subject TEXT;
UPDATE outbox SET last_error = NULL WHERE status = 'skipped';
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox ALTER COLUMN id DROP NOT NULL;
CREATE UNIQUE INDEX outbox_id ON outbox (id) WHERE id IS NOT NULL;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';
INSERT INTO cxguard_meta (key, value) VALUES ('outbox_tag', substr(md5(random()::text || clock_timestamp()::text), 1, 8));
