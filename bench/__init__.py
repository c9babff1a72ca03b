"""Benchmarks of the Lockgate backbone against hand-written aio-pika + asyncpg baselines."""
