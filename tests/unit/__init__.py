"""Unit tests: pure code, no broker or database."""
