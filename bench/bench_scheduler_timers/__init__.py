"""Scheduler timers at fleet scale: how fast due timers become confirmed install instructions.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_scheduler_timers [--small] [--computers N] [--fire N]
        [--rounds R] [--paced-load F] [--paced-seconds S] [--explain] [--profile FILE]
        [--flame-graph missed|always|never]

`--small` (about a minute): 30,000 computers, 9,000 timers fired in 3 rounds, 2 s paced.

Everything runs in this one process, against a vhost and a database of their own
(bench.common.infra) that are dropped at the end, even on failure.

Setup (not timed, reported): the scheduler's migrations, then COPY (asyncpg
copy_records_to_table) of `--computers` rows into `scheduler.computers`, each with a stored
ComputerPlan and its digest (default policy, one of 4 IANA zones, 1 or 2 pending required
installs, one deadline already past so every timer kind fires an instruction), as many rows
into `scheduler.timer_plans` (what the planner keeps for firing: the plan's TimerPlan) and
into `scheduler.timers` (one per computer, half `window`, half `deadline`, due at random in
the hour before the run's virtual now), then VACUUM ANALYZE of the three tables.

Phases 1-3 run in `--rounds` rounds of `--fire / R` timers each, every round in another
order (lockgate first in the first round, whose instructions the raw phases send), so that
a change in the machine's load falls on all three alike; each phase's rounds are added up.
Then phase 4, in the same run:

1. lockgate backlog: services.scheduler's ServiceProcess with a ManualClock set after every
   due time (so the whole table is due), timer_poll_seconds 0.05, other settings default,
   traced (bench.common.tracing: the `timers` task and each SQL statement it runs, the
   relay's steps).
   Each pass is timed from the first call of the `timers` task until its INSTALL
   instructions were published with confirms into a quorum sink queue bound to
   INSTALL's binding key on `lockgate.agents` (its depth is polled every 20 ms). Each
   one was claimed (FOR UPDATE SKIP LOCKED), decided, its outbox row and the timer's next
   due time committed, then published by the timers task itself (the relay sends what it
   could not: libs/db/direct_publish.py). The scheduler keeps firing the rest of the backlog
   until it is stopped, so more than `--fire` timers fire in all.
2. raw publish: the instructions of the latest lockgate pass (same bodies, same ce-* headers
   and properties, same exchange and routing keys) published again by a plain aio-pika
   confirm channel into the same (purged) sink, in gathers of outbox_batch_size messages
   like Bus.publish_many.
3. raw claim + outbox + publish (the issue's baseline doing the same work by hand,
   bench.common.baselines.raw_claim_outbox_publish): plain asyncpg on one connection and a
   plain aio-pika confirm channel, batch after batch of timer_batch_size: BEGIN, `SELECT
   ... FOR UPDATE SKIP LOCKED LIMIT n` of what phase 1 left of the backlog in the same
   `timers` table, DELETE of those rows, one `unnest` INSERT of the phase-1 instructions'
   rows into an outbox shaped like the scheduler's, COMMIT, then publish them with confirms
   into the (purged) sink; `--fire` rows in all. It does not mark its rows published.
4. paced (lag without a backlog): the remaining backlog is deleted; `--paced-seconds` worth
   of new timers for computers not fired yet come due at `--paced-load` times phase 1's
   rate, against a clock that runs with the wall clock; timer lag is measured per timer.

Goals (issue 19), measured in this run and saved with bench.common.results as
bench/results/scheduler_timers.json: phase 1's rate >= 0.8x phase 3's, and >= 0.5x phase 2's.
When one is missed, one more lockgate pass (its figures not reported) is recorded by py-spy
into bench/profiles/scheduler_timers.svg, named in the results (`--flame-graph`);
`--profile FILE` keeps a cProfile of phase 1 instead (slower).

Memory: resident set size of this process (the scheduler runs in it), sampled from
/proc/self/statm every 5 ms during phases 1 and 4 (bench.common.meters.RssSampler).
"""
