-- The catalog: updates (one row per update, current revision), what each source document
-- said of each KB, supersedence links as declared, advisories, imported documents, settings.

CREATE TABLE updates (
    update_id     uuid        PRIMARY KEY,
    origin        text        NOT NULL CHECK (origin IN ('microsoft', 'third_party')),
    kb            text        UNIQUE,
    revision      int         NOT NULL,
    content_hash  text        NOT NULL,
    data          jsonb       NOT NULL,  -- the update's content (SourceUpdate or upload fields)
    release_date  timestamptz NOT NULL,
    product_families text[]   NOT NULL,
    superseded_at timestamptz,
    expired_at    timestamptz,
    expiry_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX updates_release_date ON updates (release_date DESC);

-- What one document said of one KB; the update is the merge of all of them.
CREATE TABLE update_contributions (
    kb          text  NOT NULL,
    source      text  NOT NULL,
    document_id text  NOT NULL,
    data        jsonb NOT NULL,
    PRIMARY KEY (kb, source, document_id)
);

-- Supersedence as sources declare it, by KB, kept even before the other KB is known.
CREATE TABLE supersessions (
    superseding_kb text NOT NULL,
    superseded_kb  text NOT NULL,
    PRIMARY KEY (superseding_kb, superseded_kb)
);
CREATE INDEX supersessions_superseded ON supersessions (superseded_kb);

-- Fixes that are not installable updates (release notes, Click to Run, ...).
CREATE TABLE advisories (
    document_id text   NOT NULL,
    cve         text   NOT NULL,
    kind        text   NOT NULL,
    description text   NOT NULL,
    url         text,
    product_ids text[] NOT NULL,
    PRIMARY KEY (document_id, cve, kind, description)
);

CREATE TABLE documents (
    source       text        NOT NULL,
    document_id  text        NOT NULL,
    title        text        NOT NULL,
    release_date timestamptz NOT NULL,
    sha256       text        NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, document_id)
);

-- One row: what computers are offered.
CREATE TABLE settings (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    products        text[]  NOT NULL,
    classifications text[]  NOT NULL,
    changed_at      timestamptz
);
-- Its first row is written from services/catalog/domain/settings.py's defaults.
