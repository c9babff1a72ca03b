-- Re-planning that reaches many computers at once (an approval of a group and the groups
-- below it, a policy, a tree change, an update's facts) is kept as ranges of computer ids,
-- not as a mark on every computer's row: a root approval over 1,000,000 computers writes a
-- few hundred rows here instead of rewriting 1,000,000 wide rows. The planner takes one range
-- per transaction (FOR UPDATE SKIP LOCKED, any replica) and re-plans its computers in bulk.
-- One computer's change (its check-in, its groups) still marks computers.plan_dirty_at.
CREATE TABLE plan_ranges (
    range_id     bigserial   PRIMARY KEY,
    first_id     text        NOT NULL,
    last_id      text        NOT NULL,
    -- NULL: every computer from first_id to last_id; else only members of these groups.
    group_ids    uuid[],
    requested_at timestamptz NOT NULL,
    -- Changed plans are sent to their computers only when the change reached few computers;
    -- after a bigger one each agent gets its plan at its next check-in (docs/agent-protocol.md).
    push         boolean     NOT NULL
);
