"""How the key figures grow from 10,000 to 1,000,000 computers, with 1, 2 and 4 replicas, and
past one broker node (issue 19, "scale runs"); plots in docs/scaling-*.png.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_scale [--small] [--no-cluster]

A compact simulator: fleets are written straight into the services' schemas (no agent
processes), every service runs as its own process (bench_memory.processes), and each part
has a vhost and a database of its own.

1. **The whole system at 10k and 100k computers** (bench_memory.system, the memory
   benchmark's run at a smaller fleet, 20 s of agent events): a root approval's reply, its
   events published, every plan current, and each service's peak RSS. The 1M point is read
   from bench/results/memory.json, written by the memory benchmark earlier in the same
   `make bench`.
2. **Rates at 10k, 100k and 1M computers** (bench_scale/rates.py): reporting ingesting
   20,000 status reports, and the scheduler's due timers until 20,000 install instructions
   are published (the scheduler benchmark's own fleet, bench_scheduler_timers.fleet), with
   one replica at every size and 1, 2 and 4 replicas (processes) at 1M.
3. **A 3-node RabbitMQ cluster** (bench_scale/cluster.py; tests/support/servers.py starts it
   on this box): confirmed publishing to, and consuming from, a quorum queue on the shared
   node and on the cluster, and reporting ingesting through the cluster.
4. **PostgreSQL past one server** (bench_scale/postgres.py): reporting's state rows upserted
   into a table hash-partitioned by computer against the same table unpartitioned; and a
   private primary with a streaming standby (tests/support/servers.py): the standby's
   replay lag while the primary takes upserts, and a fleet-wide count read on each. The
   partitioning part runs in every run; the cluster parts (3 and the standby) are left out
   by --no-cluster and by --small.

Figures go to `results.save("scale", ...)` without goals (docs/scaling.md reads them);
plots: docs/scaling-approval.png, scaling-memory.png, scaling-rates.png,
scaling-replicas.png. `--small`: the whole system at 2k computers (and the memory
benchmark's small fleet from its JSON), rates at 2k and 10k with 1 and 2 replicas, no
cluster (a few minutes).
"""
