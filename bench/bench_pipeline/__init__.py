"""Throughput and RPC latency of the Lockgate pipeline against hand-written baselines.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_pipeline [--messages N] [--rounds R] [--rpc-calls N]
        [--small] [--profile missed|always|never]

Everything runs in this one process, against a vhost and a database of its own
(bench.common.infra) that are dropped at the end, even on failure. The figures end up in
bench/results/pipeline.json (bench.common.results) with the goal of issue 19: the pipeline
at >= 0.8x the raw pipeline, measured in the same run. When it is missed, one more lockgate
pass is recorded by py-spy into bench/profiles/pipeline.svg (its figures are not reported).

Throughput: each consumer drains N probe COUNT messages (same bodies, same envelope
headers, same kind of quorum queue, prefetch 64, pool of 10) in --rounds rounds that
interleave the consumers, each round in another order, so that a change in the machine's
load falls on all of them alike; the figures add the rounds up. A round's messages are
published and confirmed BEFORE its consumer starts, so only consumption is timed, from the
moment the consumer is registered. CPU is reported per message for this process, the run's
PostgreSQL backends and RabbitMQ (bench.common.meters.CpuMeter):

* raw pipeline (the baseline of the goal): the same work by hand, plain aio-pika + asyncpg.
  Per message: json.loads the body, one transaction upserting the counter row (a table made
  LIKE probe.counts), commit, then the event it caused (the ce-* headers and properties the
  relay sends) published with a confirm to a bound quorum sink queue, then the ack
  (bench.common.baselines.raw_pipeline_drain);
* raw consumer (the earlier baseline, kept as a second line): per message, in one
  transaction, json.loads the body, upserts a counter row and inserts one events row,
  commits, then acks; nothing is published;
* lockgate: tests.integration.probe.PROBE through ServiceProcess in this process (envelope
  decode, pydantic validation, inbox row, counter upsert, outbox row, commit, ack, metrics),
  timed from its consumer's registration (ServiceProcess's wrap_consumer hook) until every
  message is handled AND the outbox relay has published (with publisher confirms) every
  COUNTED event into a bound quorum sink queue.

Memory: resident set size of this process (bench.common.meters.RssSampler), reported as the
peak during a phase minus the RSS at its start.

RPC: sequential round trips of the probe's DIVIDE command through libs.bus.RpcClient (publisher
confirm + mandatory) to the probe service (inbox row + stored reply in a transaction, reply
published with a confirm), against a raw aio-pika direct reply-to client (no confirm) and a
raw server (json in, json out, no database, no confirm) on a quorum queue of the same exchange.
"""
