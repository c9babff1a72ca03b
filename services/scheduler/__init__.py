"""scheduler: agent policies, per-computer plans and durable timers; agents check in here."""
