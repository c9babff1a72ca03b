-- The deadline of each effective group approval, for overdue counts and the per-update gauges.
ALTER TABLE group_approvals ADD COLUMN deadline timestamptz;
