"""The fleet-wide summary: RPC calls, the same handler on one connection, its plans; and the
plans of one ingest batch."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from bench.bench_reporting_ingest.fleet import FLEET, UPDATES, bodies_of
from bench.bench_reporting_ingest.phases import HANDLER, INGEST, RECOUNT
from bench.common.explain import Explaining, explain, explain_handler, handler_context
from bench.common.infra import check, unpublished, wait_until
from bench.common.tracing import INTROSPECTION, SQL, Trace, answer_for
from libs.bus import Bus, RpcClient
from libs.contracts import agents as ag
from libs.contracts import reporting as r
from libs.contracts.envelope import Envelope
from libs.db import inbox
from libs.service import HandlerContext
from libs.service.runner import ServiceProcess
from libs.settings import Settings
from services.reporting.domain.counts import counts_of
from services.reporting.handlers import SERVICE as REPORTING

SUMMARY = answer_for(REPORTING, r.SUMMARY.type)
SUMMARY_HANDLER = f"handler {SUMMARY.name}"
DIRECT = "direct"
SUMMARY_LIMIT = 200
SQL_REPEATS = 20
RECOUNT_REPEATS = 3
QUIET_TIMEOUT = 300.0


@dataclass(frozen=True)
class SummaryFigures:
    rpc: list[float]
    handler: list[float]
    """Per RPC call: the summary handler's wall time in the service."""
    statements: list[float]
    """Per RPC call: wall time of the SQL statements the handler awaited."""
    direct: list[float]
    direct_no_jit: list[float]
    per_statement: dict[str, list[float]]
    recount: list[float]
    plans: list[tuple[str, list[tuple[str, str]]]]
    checks: str


def summary_request() -> r.Summary:
    return r.Summary(page=r.Page(limit=SUMMARY_LIMIT))


async def direct_timings(
    conn: asyncpg.Connection, repeats: int, recounts: int
) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """The summary handler on one plain connection `repeats` times: whole and per statement;
    then the recount the counters avoid."""
    trace = Trace()
    trace.attach(conn)
    ctx = handler_context(conn, REPORTING.name, Envelope.new(source="bench", type=r.SUMMARY.type))
    direct: list[float] = []
    with trace.scope(DIRECT):
        for _ in range(repeats):
            started = time.perf_counter()
            await SUMMARY.handle(ctx, summary_request())
            direct.append(time.perf_counter() - started)
    per_statement: dict[str, list[float]] = defaultdict(list)
    for span in trace.spans:
        per_statement[span.name].append(span.seconds)
    recount: list[float] = []
    for _ in range(recounts):
        started = time.perf_counter()
        await conn.fetch(RECOUNT)
        recount.append(time.perf_counter() - started)
    return direct, dict(per_statement), recount


async def check_summary(conn: asyncpg.Connection, reply: r.SummaryReport) -> str:
    """The reply's counts per update equal a recount from computer_updates."""
    raw: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await conn.fetch(
        "SELECT update_id::text, state, count(*) AS n FROM computer_updates"
        " WHERE state <> 'none' GROUP BY 1, 2"
    ):
        raw[row["update_id"]][row["state"]] = row["n"]
    wrong = [
        item.update_id
        for item in reply.updates
        if item.counts != counts_of(raw.get(item.update_id, {}), FLEET)
    ]
    text = (
        f"summary reply: {len(reply.updates)} updates, total {reply.total}, computers "
        f"{reply.computers}, new_updates_to_approve {reply.new_updates_to_approve}; "
        f"per-update counts equal to a recount of computer_updates: {not wrong}"
    )
    check(
        not wrong and len(reply.updates) == UPDATES and reply.computers == FLEET,
        f"{text} (wrong: {wrong[:5]})",
    )
    return text


async def summary_phase(bus: Bus, settings: Settings, url: str, calls: int) -> SummaryFigures:
    trace = Trace()
    process = ServiceProcess(trace.definition(REPORTING), settings, http_port=0)
    conn = await asyncpg.connect(url, server_settings={"search_path": REPORTING.name})
    try:
        await process.start()

        async def quiet() -> bool:
            dirty: int = await conn.fetchval("SELECT count(*) FROM compliance_dirty")
            return dirty == 0 and await unpublished(conn, REPORTING.name) == 0

        await wait_until(quiet, "compliance_dirty and the outbox to drain", timeout=QUIET_TIMEOUT)
        client = RpcClient(bus, source="bench", timeout=60.0)
        await client.start()
        rpc, handler, statements = [], [], []
        reply: r.SummaryReport | None = None
        for _ in range(calls):
            started = time.perf_counter()
            reply = await client.call(r.SUMMARY, summary_request())
            rpc.append(time.perf_counter() - started)
            totals = trace.totals(since=started)
            handler.append(totals[SUMMARY_HANDLER][1])
            statements.append(
                sum(t for name, (_, t) in totals.items() if name.startswith(SQL))
                - totals.get(INTROSPECTION, (0, 0.0))[1]
            )
        assert reply is not None
        checks = await check_summary(conn, reply)
        direct, per_statement, recount = await direct_timings(conn, SQL_REPEATS, RECOUNT_REPEATS)
        await conn.execute("SET jit = off")
        no_jit, _, _ = await direct_timings(conn, SQL_REPEATS, 0)
        await conn.execute("RESET jit")
        plans = []
        for jit in ("on (server default)", "off"):
            explaining = Explaining(conn)
            async with conn.transaction():
                if jit == "off":
                    await conn.execute("SET LOCAL jit = off")
                envelope = Envelope.new(source="bench", type=r.SUMMARY.type)
                ctx = handler_context(explaining.connection, REPORTING.name, envelope)
                await SUMMARY.handle(ctx, summary_request())
                recounted = await explain(conn, RECOUNT)
            plans.append((jit, [*explaining.plans, (RECOUNT, recounted)]))
    finally:
        await conn.close()
        await process.stop()
    return SummaryFigures(
        rpc, handler, statements, direct, no_jit, per_statement, recount, plans, checks
    )


async def explain_ingest(url: str, first: int, batch: int) -> list[tuple[str, str]]:
    """EXPLAIN ANALYZE of what one batch of the next reports runs; rolled back after."""
    reports = [
        (
            Envelope.new(source="agent/bench", type=ag.AGENT_STATUS.type),
            ag.AgentStatus.model_validate_json(body),
        )
        for body in bodies_of(first, batch)
    ]
    handle_many = INGEST.handle_many
    assert handle_many is not None

    async def ingest(ctx: HandlerContext) -> None:
        """What a batch transaction runs: the inbox claims, then the batch handler."""
        await inbox.claim_many(ctx.conn, [envelope.id for envelope, _ in reports], HANDLER)
        await handle_many(ctx, reports)

    return await explain_handler(url, REPORTING.name, reports[0][0], ingest)
