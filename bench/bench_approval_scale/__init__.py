"""Approving one update at the root of a large group tree, against raw asyncpg + aio-pika.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_approval_scale [--sizes 1000,2500,5000,10000]
        [--computers-per-group 100] [--no-profile]

Each size gets a vhost and a database of its own (bench.common.infra), dropped at the end
even on failure. The approval service (services.approval.handlers.SERVICE) runs
in this process through ServiceProcess, which applies its migrations; then synthetic data
is bulk-loaded straight into the `approval` schema with COPY (not timed): a seeded random
tree of `groups` groups (All computers included; 10 top-level groups, depth at most 8,
unique names), `groups * computers-per-group` computers, each a member of one or two
non-root groups, and a few updates. The loading session disables foreign-key triggers
(`session_replication_role = replica`; the rows are consistent by construction), then
ANALYZE and CHECKPOINT run so a checkpoint does not land in a timed phase.

Timed phases, each one approve command (libs.contracts.approval.APPROVE) sent with
libs.bus.RpcClient:

* warm-up: update W at the root (required install, one week); every group changes;
* root: update X at the root (required install, one week); every group changes;
* root again: X at the root with a two-week deadline; every group changes again;
* child: X on a group at depth 1 or 2 whose subtree is closest to 1/10 of the tree
  (required install, one month); the groups of that subtree change.

For each: `reply` is from sending the command to its reply (the service replies after its
transaction committed: effective approvals of every group and the events are in
`approval.outbox`); `first event` / `published` are when a quorum sink queue bound to
APPROVAL_CHANGED on `lockgate.events` holds its first / all expected messages (polled
every 10 ms with a passive declare; the outbox relay publishes with publisher confirms);
`marked` is when `approval.outbox` has no unpublished row left. Each phase is then checked:
the reply's counts, the effective rows of the update in the database, the outbox rows it
added, and the sink's messages (one per changed group, each group once, none per computer).

Baselines, in the same run, on the same database and broker:

* db: raw asyncpg on its own connection, one `INSERT ... SELECT FROM unnest(...)` of the same
  (group, update) rows in a transaction, into a table made LIKE `effective_approvals` (same
  columns, primary key and index) with the same foreign keys. `db insert` for fresh rows
  (compared with the first root approval), `db upsert` with ON CONFLICT DO UPDATE over
  existing rows (compared with the later phases). `+events` also inserts, in the same
  transaction, one row per event into a table made LIKE `approval.outbox`, with the same
  envelope and body bytes the service wrote.
* publish: raw aio-pika on its own connection and confirm channel, the same bodies and
  headers the sink received, persistent, in batches of the relay's size
  (`outbox_batch_size`) awaiting each batch's confirms, into a quorum sink of its own.

Ratios: `reply / db` (state + events in the outbox, against the raw insert of the state
rows) and `published / (db + publish)`.

Memory: RSS of this process (service, client and benchmark together) sampled every 5 ms
during a phase (bench.common.meters.RssSampler). CPU during a phase (CpuMeter): this process
(getrusage), RabbitMQ's beam.smp and every PostgreSQL process alive at both ends of the
phase (/proc/<pid>/stat; other sessions' backends included), and the share of both cores
busy (/proc/stat, everything included).

With the profile (default; off with --no-profile), at the largest size the service is
restarted traced (bench.common.tracing: the pipeline's and the relay's step hooks, the
approve handler and every SQL statement it runs) and two more root approvals of W run after
the timed phases, not counted: one reported step by step (per-call times of the relay's
repeated steps too), one under cProfile; then EXPLAIN ANALYZE of every statement the approve
handler runs, each rolled back.
"""
