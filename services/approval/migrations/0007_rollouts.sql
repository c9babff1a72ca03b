-- Rollouts (rings): an update approved for an ordered list of groups one ring at a time,
-- each next ring after a delay and a gate measured by reporting (services/approval/domain/
-- rollouts.py). `rings` holds [{group_id, started_at, started_by}] in order; `gate` the
-- RingGate and `figures` the latest GateFigures (libs/contracts/rollouts.py).
CREATE TABLE rollouts (
    rollout_id    uuid        PRIMARY KEY,
    update_id     uuid        NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    rings         jsonb       NOT NULL,
    action        text        NOT NULL,
    deadline      jsonb       NOT NULL,
    gate          jsonb       NOT NULL,
    state         text        NOT NULL,
    figures       jsonb,
    held_because  text,
    started_at    timestamptz NOT NULL,
    started_by    text        NOT NULL,
    finished_at   timestamptz,
    next_due_at   timestamptz
);
-- At most one rollout still running or held per update.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (update_id) WHERE state IN ('running', 'held');
-- What the gate task looks at: running rollouts whose delay is over.
CREATE INDEX rollouts_due ON rollouts (next_due_at) WHERE state = 'running';
CREATE INDEX rollouts_update ON rollouts (update_id, started_at DESC);

-- An auto-approval rule may start a rollout over its groups (in order) instead of approving
-- them all at once: the gate between rings, or null for a plain approval.
ALTER TABLE rules ADD COLUMN rollout jsonb;
