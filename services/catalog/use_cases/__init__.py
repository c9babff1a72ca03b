"""catalog's use cases: each command's orchestration of domain rules and storage."""
