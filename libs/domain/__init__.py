"""Pure rules two or more services share: no I/O, no asyncio, no SQL."""
