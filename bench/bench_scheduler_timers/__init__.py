"""Scheduler timers at fleet scale: how fast due timers become confirmed install instructions.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_scheduler_timers [--computers N] [--fire N]
        [--paced-load F] [--paced-seconds S] [--explain] [--profile FILE]

Everything runs in this one process, against a vhost and a database of their own
(bench.common.infra) that are dropped at the end, even on failure.

Setup (not timed, reported): the scheduler's migrations, then COPY (asyncpg
copy_records_to_table) of `--computers` rows into `scheduler.computers`, each with a stored
ComputerPlan (default policy, one of 4 IANA zones, 1 or 2 pending required installs, one
deadline already past so every timer kind fires an instruction), and as many rows into
`scheduler.timers` (one per computer, half `window`, half `deadline`, due at random in the
hour before the run's virtual now), then VACUUM ANALYZE of both tables.

Phases, in this order, in the same run:

1. lockgate backlog: services.scheduler's ServiceProcess with a ManualClock set after every
   due time (so the whole table is due), timer_poll_seconds 0.05, other settings default,
   traced (bench.common.tracing: the `timers` task and each SQL statement it runs, the
   relay's steps).
   Timed from the first call of the `timers` task until `--fire` INSTALL
   instructions were published with confirms into a quorum sink queue bound to
   INSTALL's binding key on `lockgate.agents` (its depth is polled every 20 ms). Each
   one was claimed (FOR UPDATE SKIP LOCKED), decided, its outbox row and the timer's next
   due time committed, then relayed. The scheduler keeps firing the rest of the backlog
   until it is stopped, so more than `--fire` timers fire in all.
2. raw publish: the first `--fire` instructions of phase 1 (same bodies, same ce-* headers
   and properties, same exchange and routing keys) published again by a plain aio-pika
   confirm channel into the same (purged) sink, in gathers of outbox_batch_size messages
   like Bus.publish_many.
3. raw claim: plain asyncpg on one connection, per transaction `SELECT ... FOR UPDATE
   SKIP LOCKED LIMIT timer_batch_size` then DELETE of those rows, over what phase 1 left
   of the backlog in the same `timers` table, `--fire` rows.
4. paced (lag without a backlog): the remaining backlog is deleted; `--paced-seconds` worth
   of new timers for computers not fired yet come due at `--paced-load` times phase 1's
   rate, against a clock that runs with the wall clock; timer lag is measured per timer.

Memory: resident set size of this process (the scheduler runs in it), sampled from
/proc/self/statm every 5 ms during phases 1 and 4 (bench.common.meters.RssSampler).
"""
