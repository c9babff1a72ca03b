-- earlier checksum: b0ed3c060042aadb043eb3b692a9401ab3f8792943397ca2112f1922742ea722
-- (the group tree's tables moved to the shared read copy, libs/read_copies/groups_sql)
-- Policies, read copies of groups/membership/approvals/updates, plans and durable timers.

ALTER TABLE computers
    ADD COLUMN hardware_id            text        NOT NULL DEFAULT '',
    ADD COLUMN architecture           text        NOT NULL DEFAULT 'x64',
    ADD COLUMN user_logged_on         boolean     NOT NULL DEFAULT false,
    ADD COLUMN plan_dirty_at          timestamptz,
    ADD COLUMN plan                   jsonb,
    ADD COLUMN plan_hash              text,
    ADD COLUMN last_window_at         timestamptz,
    ADD COLUMN deadline_fired_through timestamptz,
    ADD COLUMN restart_phase          text        NOT NULL DEFAULT 'idle',
    ADD COLUMN restart_due_at         timestamptz,
    ADD COLUMN restart_prompts        integer     NOT NULL DEFAULT 0;
CREATE INDEX computers_plan_dirty ON computers (plan_dirty_at) WHERE plan_dirty_at IS NOT NULL;

CREATE TABLE policies (
    policy_id  uuid        PRIMARY KEY,
    name       text        NOT NULL,
    settings   jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX policies_name_unique ON policies (lower(name));

-- One policy per group at most; the assignment time breaks ties between groups.
CREATE TABLE policy_assignments (
    group_id    uuid        PRIMARY KEY,
    policy_id   uuid        NOT NULL REFERENCES policies (policy_id) ON DELETE CASCADE,
    assigned_at timestamptz NOT NULL
);

-- Read copies, from approval's events (the group tree: libs/read_copies/groups_sql).
CREATE TABLE group_approvals (
    group_id      uuid        NOT NULL,
    update_id     uuid        NOT NULL,
    action        text        NOT NULL,
    deadline_kind text        NOT NULL,
    deadline_at   timestamptz,
    PRIMARY KEY (group_id, update_id)
);

-- Read copy of update facts, from the catalog's events.
CREATE TABLE updates (
    update_id    uuid    PRIMARY KEY,
    revision     integer NOT NULL,
    kb           text,
    title        text    NOT NULL,
    restart      text    NOT NULL,
    command_line text,
    return_codes jsonb   NOT NULL
);

-- What each agent reported per update, and what the scheduler did about it.
CREATE TABLE computer_updates (
    computer_id       text        NOT NULL,
    update_id         uuid        NOT NULL,
    state             text        NOT NULL DEFAULT 'unknown',
    state_at          timestamptz,
    planned_at        timestamptz,
    immediate_sent_at timestamptz,
    PRIMARY KEY (computer_id, update_id)
);

-- Durable timers: one per (computer, kind); claimed with FOR UPDATE SKIP LOCKED.
CREATE TABLE timers (
    computer_id text        NOT NULL,
    kind        text        NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (computer_id, kind)
);
CREATE INDEX timers_due ON timers (due_at);
