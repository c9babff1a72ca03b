-- Every import of a source document, for the console's "recent imports" (GET
-- /api/v1/catalog/imports). `documents` keeps one row per document, its latest import;
-- this keeps each import with the counts its ImportResult gave and how long it took.
CREATE TABLE imports (
    import_id        bigserial        PRIMARY KEY,
    source           text             NOT NULL,
    document_id      text             NOT NULL,
    title            text             NOT NULL,
    release_date     timestamptz      NOT NULL,
    label            text             NOT NULL,
    sent_by          text             NOT NULL,
    sha256           text             NOT NULL,
    result           jsonb            NOT NULL,  -- the ImportResult the import answered
    imported_at      timestamptz      NOT NULL,
    duration_seconds double precision NOT NULL CHECK (duration_seconds >= 0)
);
CREATE INDEX imports_newest ON imports (imported_at DESC, import_id DESC);

-- Upload sessions are listed newest first (GET /api/v1/uploads).
CREATE INDEX uploads_newest ON uploads (created_at DESC, upload_id DESC);
