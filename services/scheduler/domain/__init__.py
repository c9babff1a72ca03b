"""scheduler's pure rules (no I/O, clock passed in): windows, policies, plans, restarts, timers."""
