-- The audit log answers "who did what": the request's content (secrets removed), refusals
-- by anonymous or unknown callers (no role), and why a request was refused. Tokens may
-- expire.
ALTER TABLE audit ALTER COLUMN role DROP NOT NULL;
ALTER TABLE audit ADD COLUMN content jsonb;
ALTER TABLE audit ADD COLUMN detail text;
CREATE INDEX audit_by_actor ON audit (token_name, seq);
CREATE INDEX audit_by_status ON audit (status, seq);

ALTER TABLE tokens ADD COLUMN expires_at timestamptz;
