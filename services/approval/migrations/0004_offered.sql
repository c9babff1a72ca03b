-- Whether the catalog settings offer each update (catalog.update.offered/withdrawn.v1 and the
-- snapshots), why not, and the (revision, settings version) that decision was made on, so an
-- older message never overrides a newer one.
ALTER TABLE updates
    ADD COLUMN offered                boolean NOT NULL DEFAULT true,
    ADD COLUMN not_offered_because    text,
    ADD COLUMN offer_revision         integer NOT NULL DEFAULT 0,
    ADD COLUMN offer_settings_version bigint  NOT NULL DEFAULT 0;
