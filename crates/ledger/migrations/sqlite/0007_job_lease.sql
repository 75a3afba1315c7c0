-- Who runs a job now (trust review): a lease taken with a conditional UPDATE, renewed
-- while the job runs and left to expire when its process dies, so two service replicas
-- sharing this ledger never run one job at once. The time is milliseconds since 1970.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
