"""catalog: every update Lockgate knows (Microsoft and third-party), settings, supersession."""
