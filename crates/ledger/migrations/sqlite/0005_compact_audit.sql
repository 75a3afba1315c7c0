-- Audit entries, a third of their size (issue 16): each entry's details are stored once
-- per distinct text in audit_details and referred to by id (the entries of one job
-- mostly share one text), its hash is 32 bytes rather than 64 hex digits, and
-- prev_hash is no longer stored: it is the previous entry's hash, which verify reads
-- anyway. The hash of an entry is computed as before, over the same fields and the
-- previous hash in hex, so every existing entry verifies unchanged.
-- Existing entries keep one details row each (the same id as their seq). A stored hash
-- that is not 64 hex digits becomes empty, and verify names that entry.
CREATE TABLE audit_details (
    id       INTEGER PRIMARY KEY,
    details  TEXT    NOT NULL
);
INSERT INTO audit_details (id, details) SELECT seq, details FROM audit_entries;
CREATE TABLE audit_entries_v5 (
    seq        INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    operation  TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    details_id INTEGER NOT NULL,
    hash       BLOB    NOT NULL
);
INSERT INTO audit_entries_v5 (seq, at, actor, operation, target, outcome, details_id, hash)
    SELECT seq, at, actor, operation, target, outcome, seq,
           CASE WHEN length(hash) = 64 THEN COALESCE(unhex(hash), X'') ELSE X'' END
    FROM audit_entries;
DROP TABLE audit_entries;
ALTER TABLE audit_entries_v5 RENAME TO audit_entries;
CREATE INDEX audit_entries_operation ON audit_entries (operation);
