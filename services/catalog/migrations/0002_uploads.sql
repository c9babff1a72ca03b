-- Third-party uploads: sessions, their bytes while receiving (in the database, so any
-- replica can take any chunk), stored content by sha256, and installed packages.

CREATE TABLE uploads (
    upload_id      uuid        PRIMARY KEY,
    state          text        NOT NULL CHECK (state IN ('receiving', 'received', 'committed', 'refused')),
    refusal        text,
    files          jsonb       NOT NULL,   -- declared [{path, size}], installer first
    received_bytes bigint      NOT NULL DEFAULT 0,
    steps          jsonb       NOT NULL DEFAULT '{}',  -- answers to steps 2-7
    extracted      jsonb,
    update_id      uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE upload_chunks (
    upload_id uuid   NOT NULL REFERENCES uploads ON DELETE CASCADE,
    path      text   NOT NULL,
    "offset"  bigint NOT NULL,
    data      bytea  NOT NULL,
    PRIMARY KEY (upload_id, path, "offset")
);

-- Content held in the content store; counted against the quota once per hash.
CREATE TABLE contents (
    sha256    text        PRIMARY KEY,
    size      bigint      NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);

-- The files of each third-party update, and how to install it.
CREATE TABLE packages (
    update_id uuid  PRIMARY KEY REFERENCES updates ON DELETE CASCADE,
    package   jsonb NOT NULL
);
CREATE TABLE package_files (
    update_id uuid   NOT NULL REFERENCES updates ON DELETE CASCADE,
    path      text   NOT NULL,
    sha256    text   NOT NULL REFERENCES contents,
    size      bigint NOT NULL,
    PRIMARY KEY (update_id, path)
);
