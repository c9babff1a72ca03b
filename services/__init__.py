"""The Lockgate services, each runnable as `python -m services.<name>`."""
