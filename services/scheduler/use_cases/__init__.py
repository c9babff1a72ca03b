"""scheduler's use cases: each reads and writes through store/ and decides through domain/."""
