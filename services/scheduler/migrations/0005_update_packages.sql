-- Third-party updates: how to install them (the catalog's package, as published) and the
-- installer's sha256, so plans and install instructions carry the installation.
ALTER TABLE updates
    ADD COLUMN package jsonb,
    ADD COLUMN sha256  text;
