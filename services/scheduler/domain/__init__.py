"""scheduler's pure rules (no I/O): check-ins so far; policies and plans to come."""
