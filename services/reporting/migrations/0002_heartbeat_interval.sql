-- The interval each instance announces, so reporting can tell alive from stale instances.
ALTER TABLE service_instances ADD COLUMN interval_seconds double precision NOT NULL DEFAULT 15;
