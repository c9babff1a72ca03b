"""Lockgate tests."""
