-- Whether the catalog settings offer each update (docs/product.md section 2): an update not
-- offered is never planned. The offered state is kept with the update revision and the
-- catalog settings version it was decided on, so an older snapshot or event never replaces
-- a newer one.
ALTER TABLE updates
    ADD COLUMN offered          boolean NOT NULL DEFAULT true,
    ADD COLUMN offered_revision integer NOT NULL DEFAULT 0,
    ADD COLUMN settings_version integer NOT NULL DEFAULT 0;
