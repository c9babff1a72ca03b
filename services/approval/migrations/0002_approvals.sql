-- The group tree, memberships, the read copy of catalog updates, approvals and rules.

CREATE TABLE groups (
    group_id   uuid        PRIMARY KEY,
    name       text        NOT NULL,
    parent_id  uuid        REFERENCES groups (group_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT only_root_has_no_parent
        CHECK ((parent_id IS NULL) = (group_id = '00000000-0000-0000-0000-000000000001'))
);
CREATE UNIQUE INDEX groups_name_unique ON groups (lower(name));
CREATE INDEX groups_parent ON groups (parent_id);
INSERT INTO groups (group_id, name, parent_id)
VALUES ('00000000-0000-0000-0000-000000000001', 'All computers', NULL);

-- Every computer is in All computers implicitly; rows here are the other groups.
CREATE TABLE memberships (
    computer_id text NOT NULL REFERENCES computers (computer_id),
    group_id    uuid NOT NULL REFERENCES groups (group_id),
    PRIMARY KEY (computer_id, group_id)
);
CREATE INDEX memberships_group ON memberships (group_id);

-- What approval knows of each update, from catalog events only.
CREATE TABLE updates (
    update_id       uuid        PRIMARY KEY,
    kb              text,
    revision        integer     NOT NULL,
    origin          text        NOT NULL,
    title           text        NOT NULL,
    classification  text        NOT NULL,
    severity        text,
    product_families text[]     NOT NULL,
    release_date    timestamptz NOT NULL,
    superseded_by   uuid[]      NOT NULL DEFAULT '{}',
    expired_at      timestamptz,
    declined_at     timestamptz,
    learnt_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX updates_kb ON updates (kb);

CREATE TABLE explicit_approvals (
    group_id      uuid        NOT NULL REFERENCES groups (group_id),
    update_id     uuid        NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    action        text        NOT NULL,
    deadline_kind text        NOT NULL,
    deadline_at   timestamptz,
    approved_at   timestamptz NOT NULL,
    approved_by   text        NOT NULL,
    PRIMARY KEY (update_id, group_id)
);
CREATE INDEX explicit_approvals_group ON explicit_approvals (group_id);

-- Materialised inheritance: what applies to each group, and the group it comes from.
CREATE TABLE effective_approvals (
    group_id        uuid        NOT NULL REFERENCES groups (group_id),
    update_id       uuid        NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    action          text        NOT NULL,
    deadline_kind   text        NOT NULL,
    deadline_at     timestamptz,
    source_group_id uuid        NOT NULL,
    approved_at     timestamptz NOT NULL,
    approved_by     text        NOT NULL,
    PRIMARY KEY (update_id, group_id)
);
CREATE INDEX effective_approvals_group ON effective_approvals (group_id);

CREATE TABLE rules (
    rule_id         uuid        PRIMARY KEY,
    name            text        NOT NULL,
    description     text        NOT NULL,
    products        text[]      NOT NULL,
    classifications text[]      NOT NULL,
    severities      text[]      NOT NULL,
    title_contains  text,
    group_ids       uuid[]      NOT NULL,
    deadline        text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX rules_name_unique ON rules (lower(name));
