-- The pause that holds a group's effective approval (approval's `Approval.paused`, as JSON;
-- NULL: not paused): plans mark those items paused and send no install for them.
ALTER TABLE group_approvals ADD COLUMN paused jsonb;
