"""Code shared by two or more Lockgate services: settings, contracts, bus, db, observability."""
