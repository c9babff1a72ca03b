"""Resident memory of every Lockgate service with a fleet of 1,000,000 computers (issue 19).

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_memory [--computers N] [--small]

A vhost and a database of its own (bench.common.infra). Every service's migrations are
applied, then the fleet is written straight into the schemas (bench_memory/fleet.py: the
approval service's tree, computers and memberships by COPY as bench_approval_scale loads
them, 10,000 groups for 1M computers; the scheduler's and reporting's read copies and
computers set-wise from those). Then the five services run as the Procfile runs them, one
`python -m services.<name>` process each (bench_memory/processes.py), and a thread reads each
process's RSS (its children included) from /proc every 0.2 s through four phases:

1. idle, with the fleet known (10 s);
2. a root approval (one update, All computers, required install) sent to approval over RPC,
   until approval's events are published and the scheduler has recomputed every plan (or
   --replan-timeout);
3. agent status reports of random computers at 1,000/s for 60 s (bench_memory/load.py), as
   agents send them, to reporting and the scheduler; meanwhile the catalog imports the
   January 2026 MSRC document and the console is asked for the fleet list and the overview
   every 2 s;
4. until the agent-report queues are empty.

Figure: each service's peak RSS over the phases, goal < 1 GiB
(`results.save("memory", ...)`); for a miss, bench/profiles/memory-<service>.txt has its RSS
every 5 s by phase. `--small`: 20,000 computers, 15 s of events (about two minutes).
"""
