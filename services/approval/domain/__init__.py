"""approval domain rules: pure functions over plain values, no I/O."""
