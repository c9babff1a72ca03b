-- The group tree and membership, as approval's events describe them. All computers is
-- implicit in membership: every computer is in it, so it has no membership rows.
-- IF NOT EXISTS: databases made before this read copy was shared already hold these tables.
CREATE TABLE IF NOT EXISTS groups (
    group_id  uuid PRIMARY KEY,
    name      text NOT NULL,
    parent_id uuid
);
INSERT INTO groups (group_id, name, parent_id)
VALUES ('00000000-0000-0000-0000-000000000001', 'All computers', NULL)
ON CONFLICT (group_id) DO NOTHING;

CREATE TABLE IF NOT EXISTS memberships (
    computer_id text NOT NULL,
    group_id    uuid NOT NULL,
    PRIMARY KEY (computer_id, group_id)
);
CREATE INDEX IF NOT EXISTS memberships_group ON memberships (group_id);
