-- The policy in force for each computer, from scheduler.computer.policy-changed.v1 (the
-- `policy` column of 0007 holds its name): when the scheduler found it, so a late or
-- repeated event never replaces a newer one.
ALTER TABLE computers
    ADD COLUMN policy_changed_at timestamptz;
