-- Each computer's own deadline is an approved one moved later by its share of its policy's
-- deadline spread (libs/domain/deadline_spread.py), announced with its policy in force
-- (scheduler.computer.policy-changed.v1): the offset is kept here in whole seconds so the
-- past-deadline counts read it in SQL. 0: no spread (and every computer before this file).
ALTER TABLE computers ADD COLUMN deadline_offset_seconds integer NOT NULL DEFAULT 0;
