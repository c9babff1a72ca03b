"""Catalog import of the MSRC January + February documents against a plain XML parse of them.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_catalog_import [--rounds N | --small]

Everything runs in this one process, against a vhost and a database of its own
(bench.common.infra) that are dropped at the end, even on failure. Both files
are read into memory once; every phase below works from those bytes, never from the disk.

Each round measures, one after the other (so slow moments of the machine hit every phase):

* baseline: `xml.etree.ElementTree.iterparse` over both files, "end" events only, every
  element cleared as it ends: the cheapest full XML parse. For reference also iterparse with
  "start" and "end" events, and `ET.parse` (a whole tree each);
* parse only: services.catalog.domain.msrc.parse_cvrf over both files (no database, no bus);
* the no-op import RPC: the catalog service as it is (NO_OP_CATALOG), except that its import
  handler answers without decoding, parsing or writing anything, started the same way on a
  database of its own; January then February sent exactly as below. It is the RPC path an
  import cannot avoid: the client, the broker, the service's pipeline (decode, transaction,
  inbox claim, stored reply, reply, ack) carrying the same megabytes;
* end to end: services.catalog.handlers.SERVICE runs through ServiceProcess in this process
  on a FRESH database (so every round really inserts and publishes); January then February
  are sent with libs.bus.RpcClient, each as the CLI sends it (`lockgate catalog import-msrc`:
  an ImportDocument, gzip + base64, one call, reply awaited). Timed from sending the first
  command to the reply of the second, and until every `catalog.update.*` event of the two
  imports has reached a quorum sink queue bound to the catalog's update events on `lockgate.events`
  (the outbox relay publishes with confirms). The client's gzip + base64 of the documents
  happens before the clock starts; it is timed and reported on its own.

The goals (issue 19), each a ratio of medians over the rounds of this run: parse_cvrf <= 1.5x
the plain iterparse; the import (send January -> February's reply) <= 2x (plain iterparse +
the no-op import RPC). bench/results/catalog_import.json gets both (bench.common.results); a
missed goal leaves a cProfile listing under bench/profiles/ (catalog_import_parse.txt for the
parse, catalog_import.txt for one more import round).

After the timed rounds, one more end-to-end round (not counted in the table) runs traced
(bench.common.tracing: ServiceProcess's step hooks, the handler wrapped in the definition and
every SQL statement it runs) and reports where the time went.

Every round checks its results and the script exits with an error if any is wrong: the same
document ids, KBs and advisories from every parse; the import replies agree with parse_cvrf
(updates, advisories, published = every distinct KB); every published event at the sink names
the update id of one distinct KB; the sink got exactly the events the replies announce, each
once; and the catalog outbox holds exactly those events, all marked published.
"""
