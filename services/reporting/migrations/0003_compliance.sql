-- earlier checksum: cbba96fcd373099492d922431eb75e9a890305d3c9aff224ef5b4b4e9042ed3f
-- (the group tree's tables moved to the shared read copy, libs/read_copies/groups_sql)
-- Agent results per computer and update, their history, counters, and read copies.

CREATE TABLE computers (
    computer_id   text        PRIMARY KEY,
    hostname      text        NOT NULL,
    registered_at timestamptz NOT NULL
);

-- The group tree: libs/read_copies/groups_sql.

CREATE TABLE updates (
    update_id      uuid        PRIMARY KEY,
    revision       integer     NOT NULL,
    kb             text,
    title          text        NOT NULL,
    classification text        NOT NULL,
    severity       text,
    return_codes   jsonb       NOT NULL,
    superseded     boolean     NOT NULL DEFAULT false,
    declined_at    timestamptz
);
CREATE INDEX updates_kb ON updates (kb);

-- Effective approvals per group (from approval.changed.v1): who is targeted.
CREATE TABLE group_approvals (
    group_id  uuid NOT NULL,
    update_id uuid NOT NULL,
    action    text NOT NULL,
    PRIMARY KEY (update_id, group_id)
);

-- The state of each update on each computer; `none` rows are placeholders being locked.
CREATE TABLE computer_updates (
    computer_id      text        NOT NULL,
    update_id        uuid        NOT NULL,
    state            text        NOT NULL,
    reported_at      timestamptz,
    last_return_code integer,
    PRIMARY KEY (update_id, computer_id)
);
CREATE INDEX computer_updates_computer ON computer_updates (computer_id);

CREATE TABLE install_attempts (
    computer_id text        NOT NULL,
    update_id   uuid        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    return_code integer     NOT NULL,
    outcome     text        NOT NULL,
    operation   text        NOT NULL,
    PRIMARY KEY (update_id, computer_id, started_at)
);

-- Counters kept with every state change, so fleet-wide summaries read a few rows.
CREATE TABLE update_counts (
    update_id uuid    NOT NULL,
    state     text    NOT NULL,
    n         bigint  NOT NULL,
    PRIMARY KEY (update_id, state)
);

-- Updates whose counts changed since reporting.compliance.changed.v1 last said so.
CREATE TABLE compliance_dirty (
    update_id uuid PRIMARY KEY
);
