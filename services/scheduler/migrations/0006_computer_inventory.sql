-- The inventory of each computer's last check-in, against which third-party requirements are
-- checked (empty / NULL: the agent did not say).
ALTER TABLE computers
    ADD COLUMN operating_system text   NOT NULL DEFAULT '',
    ADD COLUMN free_disk_bytes  bigint,
    ADD COLUMN memory_bytes     bigint;
