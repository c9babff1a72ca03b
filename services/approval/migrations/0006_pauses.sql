-- Pauses of an update's approval (services/approval/domain/pauses.py): fleet-wide (scope
-- 'fleet', group_id NULL) or on one group (scope = the group's id), with who, why and when.
CREATE TABLE pauses (
    update_id uuid        NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    scope     text        NOT NULL,
    group_id  uuid        REFERENCES groups (group_id) ON DELETE CASCADE,
    paused_by text        NOT NULL,
    reason    text        NOT NULL,
    paused_at timestamptz NOT NULL,
    PRIMARY KEY (update_id, scope),
    CONSTRAINT scope_names_the_group
        CHECK ((scope = 'fleet' AND group_id IS NULL) OR scope = group_id::text)
);

-- The pause that holds each effective approval (NULL: not paused), as events carry it.
ALTER TABLE effective_approvals
    ADD COLUMN paused_by       text,
    ADD COLUMN paused_reason   text,
    ADD COLUMN paused_at       timestamptz,
    ADD COLUMN paused_group_id uuid;
