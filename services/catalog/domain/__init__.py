"""catalog's pure rules and types: updates, source documents, installers, settings, offers,
uploads."""
