-- A restart after an install forced by a passed deadline is not forced before the end of the
-- policy's grace (deadline_grace_days; services/scheduler/domain/restarts.py): NULL, no grace.
ALTER TABLE computers ADD COLUMN restart_grace_until timestamptz;
