"""reporting's pure rules and types: what a batch of reports says, and counts per state."""
