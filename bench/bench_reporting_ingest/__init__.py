"""Agent status reports into reporting, against raw baselines; and the fleet-wide summary.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_reporting_ingest [--messages N] [--batch 100 200]
        [--summary-calls 20] [--profile] [--py-spy auto|always|never] [--small]

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

Per batch size (LOCKGATE_BATCH_SIZE; the prefetch is three batches, libs/service/batching.py
`batch_prefetch`), on emptied tables, the N reports are published with confirms on
`lockgate.agents` (ce-subject and routing key = the computer) BEFORE any consumer runs; the
topic exchange copies each into reporting's `reporting.agent-reports` queue and into three
raw quorum queues bound the same way. Then, one after the other: raw consume, raw ingest,
lockgate, raw ingest again (the baseline is the mean of the two raw ingest runs, so load
from other processes that drifts during a round weighs on both sides alike):

* raw consume (for scale only, no goal): aio-pika, same prefetch, json.loads, ack each;
* raw ingest, the baseline of issue 19 (bench/common/baselines.py `raw_batch_drain`): the
  same prefetch and batch size: batches of `batch_size` messages or what came within
  `batch_wait_seconds`, one batch committing while the next fills; per batch json.loads
  each body, the newest observation per (computer, update), ONE `INSERT ... SELECT FROM
  unnest(...) ON CONFLICT DO UPDATE` (never backwards in time, the sticky states kept) in
  one transaction into a table shaped like reporting.computer_updates, and ONE ack with
  multiple=True;
* lockgate: reporting's SERVICE through ServiceProcess in this process, timed from the
  consumer's registration on `reporting.agent-reports` until every batch has committed and
  acked.

The goals: lockgate's reports/s >= 0.8x the raw ingest's, and its reports per second of
batch transactions (acquire, BEGIN, inbox claims, the batch handler, COMMIT: the
`batch.transaction` step of libs/service/batching.py) >= 0.8x the raw ingest's (BEGIN, the
upsert, COMMIT), i.e. database time per batch of the same size. Both come from the batch
size with the best end-to-end ratio, and go to bench/results/reporting_ingest.json.

Checks after each batch size: every message claimed in reporting.inbox once, queues and
dead-letter queues empty, no batch fell back to one-by-one, no placeholder rows, the
counters (reporting.update_counts) equal a recount of reporting.computer_updates, and the
stored (computer, update, state, reported_at) rows equal the raw ingest's table.

Then the summary: the SUMMARY command (Summary(page=Page(limit=200))) through
libs.bus.RpcClient, sequentially; the same store queries timed directly over asyncpg; and
EXPLAIN (ANALYZE, BUFFERS) of each, of the recount it avoids, and of one ingest batch.
"""
