"""Agent status reports into reporting, against raw baselines; and the fleet-wide summary.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_reporting_ingest [--messages N] [--prefetch 256 500]
        [--summary-calls 20] [--profile]

Everything runs in this one process, against a vhost and a database of its own
(tests.support.infra.local_infra) that are dropped at the end, even on failure.

The fleet: 100,000 computers and 200 updates, loaded with COPY into reporting's read copies
(`reporting.computers`, `reporting.updates`, and `reporting.group_approvals` approving every
update for the root group, so every computer is targeted by every update). The stream:
1,000,000 agent status reports (AGENT_STATUS), 10 per computer with increasing `reported_at`, in
rounds (report 1 of every computer, then report 2, ...). Each computer has 8 applicable
updates (a fixed draw per computer); a report carries 4 detections of them, and an install
result for each update whose install round it is (about 0.46 per report; codes 0, 3010 or
1603). `--messages N` takes the first N reports of that stream (N=200,000: the first two
reports of every computer).

Per prefetch value, on emptied tables, the N reports are published with confirms on
`lockgate.agents` (ce-subject and routing key = the computer) BEFORE any consumer runs; the
topic exchange copies each into reporting's `reporting.agent-reports` queue and into a raw
quorum queue bound the same way. Then, one after the other:

* raw consume: aio-pika, same prefetch, json.loads each body, ack each message;
* raw upsert: asyncpg, the (computer, update, state, reported_at) rows derived from the same
  bodies (derived before the clock starts, newest per key within a batch), one
  `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` per batch of `prefetch`
  messages, one transaction per batch, into a table shaped like reporting.computer_updates;
* lockgate: reporting's SERVICE through ServiceProcess in this process, timed from the
  consumer's registration on `reporting.agent-reports` until every batch has committed and
  acked (batches: up to `prefetch` messages per transaction, libs/service/batching.py).

Checks after each prefetch value: every message claimed in reporting.inbox once, queues and
dead-letter queues empty, no batch fell back to one-by-one, the counters
(reporting.update_counts) equal a recount of reporting.computer_updates, and the stored
(computer, update, state, reported_at) rows equal the raw upsert's table.

Then the summary: the SUMMARY command (Summary(page=Page(limit=200))) through
libs.bus.RpcClient, sequentially; the same store queries timed directly over asyncpg; and
EXPLAIN (ANALYZE, BUFFERS) of each, of the recount it avoids, and of one ingest batch.
"""
