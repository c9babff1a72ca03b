"""Agent event -> compliance visible: how long after an agent sends its status report the
console shows it, at 1,000 reports per second.

Run from the repository root (needs the local RabbitMQ and PostgreSQL):

    .venv/bin/python -m bench.bench_compliance_latency [--rate 1000] [--seconds 60]
        [--sample 20] [--poll-ms 5] [--py-spy auto|never] [--small]

Reporting runs as its own process (`python -m services.reporting`, default settings), in a
vhost and a database of their own, dropped at the end. Its read copies hold the ingest
benchmark's fleet (bench/bench_reporting_ingest/fleet.py: 100,000 computers, 200 updates
approved for All computers), loaded with COPY before the clock starts.

Agents: each report is the first status report of a different computer from that fleet's
stream (about 4 detections and an install result in two reports of five), published as the
simulator's agents publish (services/simulator/fleet.py `_send`: an envelope with the agent
as subject, `agent.<id>.status.v1` on `lockgate.agents`, persistent, each publish awaiting
its own confirm), paced at `--rate` per second (the n-th report is sent at n / rate s, many
in flight at once as a fleet would).

Visible: one report in `--sample` is followed. From the moment its publish starts, the bench
asks, in one indexed statement per poll for every followed report not shown yet, whether the
report's (computer, update) state row holds it (its `reported_at` or a newer one): the row
the console's computer and update pages read (services/reporting/store/ states.py). An
earlier version ran the computer page's whole query per pending report on three connections;
under a backlog that polling grew with it and took most of the database's two cores, slowing
what it measured. Then it waits `--poll-ms` ms, until the row shows the report. Its latency
is the time from the publish to the end of the first poll that shows it: an upper bound; the
"resolution" line gives how long before that the last poll still did not show it. The
counters the console's overview reads (update_counts) change in the same transaction, so
they are visible at the same moment. The first second is left out (connections warming up).
Reporting is recorded by py-spy meanwhile (`--py-spy never`: not), into
bench/profiles/compliance_latency.svg, kept only when the goal is missed.

The figures: p50, p99 and max of the followed reports' latencies, the rate actually sent,
the publish confirm times and reporting's own delivery -> commit histogram for comparison;
`bench.common.results.save` with the goal of issue 19 (p99 < 250 ms).
"""
