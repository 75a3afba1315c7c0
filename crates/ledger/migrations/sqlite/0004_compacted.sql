-- A finished job's done items that carry no result are deleted when it closes: each
-- one's audit entry says the same, and they were two thirds of the journal's bytes per
-- contact. How many were deleted is kept here, so the job's counts stay whole.
ALTER TABLE jobs ADD COLUMN compacted BIGINT NOT NULL DEFAULT 0;
