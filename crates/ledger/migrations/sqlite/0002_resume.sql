-- Resuming jobs: where a listing-driven job had got to, what it was started with, and a
-- lookup of an item's latest result across jobs.
ALTER TABLE jobs ADD COLUMN cursor TEXT;
ALTER TABLE jobs ADD COLUMN fingerprint TEXT;
CREATE INDEX job_items_key ON job_items (item_key, state);
CREATE INDEX jobs_fingerprint ON jobs (kind, fingerprint, status)
