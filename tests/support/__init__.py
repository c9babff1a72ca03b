"""Helpers the integration tests share: isolated infrastructure, processes, a TCP proxy."""
