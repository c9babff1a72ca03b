"""Logs, metrics and the health/metrics HTTP endpoint shared by every service."""
