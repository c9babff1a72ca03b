-- Whether the catalog offers each update (its settings choose products and classifications):
-- an update not offered is not "new to approve". Revision and settings version order the
-- snapshot and the offered/withdrawn events, so a late message never undoes a newer one.
ALTER TABLE updates
    ADD COLUMN offered boolean NOT NULL DEFAULT true,
    ADD COLUMN offer_revision int NOT NULL DEFAULT 0,
    ADD COLUMN offer_settings_version int NOT NULL DEFAULT 0;
