-- Every change of the settings adds one to their version; events and snapshots carry the
-- version their offered state was decided under, so other services can order them.
ALTER TABLE settings ADD COLUMN version bigint NOT NULL DEFAULT 1;
