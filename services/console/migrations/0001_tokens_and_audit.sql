-- API tokens (only their sha256 is kept) and the audit log of every write.
CREATE TABLE tokens (
    token_id   uuid        PRIMARY KEY,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('admin', 'viewer')),
    sha256     text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE audit (
    seq            bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    token_id       uuid,
    token_name     text        NOT NULL,
    role           text        NOT NULL,
    method         text        NOT NULL,
    path           text        NOT NULL,
    command        text,
    status         integer     NOT NULL,
    correlation_id text        NOT NULL
);
