"""The agent fleet simulator: many simulated Windows agents speaking the agent protocol."""
