"""reporting's pure rules: how agent reports move a computer's state for an update."""
