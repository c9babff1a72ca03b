"""Throughput and RPC latency of the Lockgate pipeline against hand-written baselines.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_pipeline [--messages N] [--rpc-calls N]

Everything runs in this one process, against a vhost and a database of its own
(bench.common.infra) that are dropped at the end, even on failure.

Throughput: N probe COUNT messages (same bodies, same envelope headers, same kind of
quorum queue, prefetch 64, pool of 10) are published and confirmed BEFORE each consumer
starts, so only consumption is timed, from the moment the consumer is registered:

* baseline: a raw aio-pika consumer (manual ack) + asyncpg that per message, in one
  transaction, json.loads the body, upserts a counter row (a table made LIKE probe.counts)
  and inserts one events row, commits, then acks;
* lockgate: tests.integration.probe.PROBE through ServiceProcess in this process (envelope
  decode, pydantic validation, inbox row, counter upsert, outbox row + NOTIFY, commit, ack,
  metrics), timed from its consumer's registration (ServiceProcess's wrap_consumer hook)
  until every message is handled AND the outbox relay has published (with publisher
  confirms) every COUNTED event into a bound quorum sink queue.

Memory: resident set size of this process (bench.common.meters.RssSampler), reported as the
peak during a phase minus the RSS at its start.

RPC: sequential round trips of the probe's DIVIDE command through libs.bus.RpcClient (publisher
confirm + mandatory) to the probe service (inbox row + stored reply in a transaction, reply
published with a confirm), against a raw aio-pika direct reply-to client (no confirm) and a
raw server (json in, json out, no database, no confirm) on a quorum queue of the same exchange.
"""
