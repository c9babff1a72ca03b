"""The fleet list at scale: page latency of `reporting.computer.list.v1` per sort and filter.

Loads N computers (default 20,000; `--computers 1000000`) with inventory, last contact,
per-computer counters, group memberships and states of three approved updates straight
into reporting's schema, starts a reporting process, and walks keyset pages through RPC for
each sort and filter; a raw asyncpg baseline runs the same page query by hand (one SQL
statement with the page's groups and compliance) in the same run. The ratio is Lockgate's
median page time over the baseline's.
"""
