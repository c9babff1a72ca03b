"""reporting: agent results in, compliance out; and which service instances are alive."""
