"""asyncpg pool, per-schema migrations, inbox dedupe and the transactional outbox."""
