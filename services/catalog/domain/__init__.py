"""catalog's pure rules: update records, supersession, revisions, settings, uploads."""
