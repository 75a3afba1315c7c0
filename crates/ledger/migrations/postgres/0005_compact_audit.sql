-- Audit entries, a third of their size (issue 16): each entry's details are stored once
-- per distinct text in audit_details and referred to by id (the entries of one job
-- mostly share one text), its hash is 32 bytes rather than 64 hex digits, and
-- prev_hash is no longer stored: it is the previous entry's hash, which verify reads
-- anyway. The hash of an entry is computed as before, over the same fields and the
-- previous hash in hex, so every existing entry verifies unchanged.
-- Existing entries keep one details row each (the same id as their seq). A stored hash
-- that is not 64 hex digits becomes empty, and verify names that entry.
CREATE TABLE audit_details (
    id       BIGSERIAL PRIMARY KEY,
    details  TEXT      NOT NULL
);
INSERT INTO audit_details (id, details) SELECT seq, details FROM audit_entries;
SELECT setval(pg_get_serial_sequence('audit_details', 'id'), COALESCE((SELECT MAX(id) FROM audit_details), 0) + 1, false);
ALTER TABLE audit_entries ADD COLUMN details_id BIGINT;
UPDATE audit_entries SET details_id = seq;
ALTER TABLE audit_entries ALTER COLUMN details_id SET NOT NULL;
ALTER TABLE audit_entries DROP COLUMN details;
ALTER TABLE audit_entries DROP COLUMN prev_hash;
ALTER TABLE audit_entries ALTER COLUMN hash TYPE BYTEA USING CASE WHEN hash ~ '^[0-9a-f]{64}$' THEN decode(hash, 'hex') ELSE ''::bytea END;
