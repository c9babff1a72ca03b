-- Browser sessions of the web console (POST /api/v1/session): the cookie's secret is kept
-- only as its sha256, like API tokens. A session works only while its token does (revoked
-- or expired tokens end their sessions at once: every request joins tokens), and at most
-- until expires_at. Claims migration number 0005.
CREATE TABLE sessions (
    sha256       text        PRIMARY KEY,
    token_id     uuid        NOT NULL REFERENCES tokens (token_id) ON DELETE CASCADE,
    csrf_token   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX sessions_by_token ON sessions (token_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
