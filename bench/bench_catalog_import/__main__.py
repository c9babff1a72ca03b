"""python -m bench.bench_catalog_import: the rounds, one traced round, then the figures."""

from __future__ import annotations

import argparse
import cProfile
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import bench_catalog_import
from bench.bench_catalog_import.end_to_end import (
    IMPORT_HANDLER,
    EndToEnd,
    Sink,
    end_to_end,
    no_op_imports,
    sink_consumer,
)
from bench.bench_catalog_import.parse import (
    BASELINE,
    ITERPARSE,
    NO_OP,
    PARSE_CVRF,
    PHASES,
    PUBLISHED,
    REPLIED,
    Documents,
    Parsed,
    Row,
    import_requests,
    iterparse_end,
    parse_both,
    parse_round,
)
from bench.common import results
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.report import (
    format_table,
    goal,
    print_environment,
    print_table,
    profile_text,
)
from bench.common.results import Goal, Measure
from bench.common.tracing import Trace
from libs.bus import Bus, RpcClient
from libs.contracts import catalog as c
from services.cli.catalog_commands import IMPORT_TIMEOUT_SECONDS
from tests.support.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
FILES = (ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml", ROOT / "data" / "msrc" / "cvrf-2026-Feb.xml")
DOCUMENT_IDS = ("2026-Jan", "2026-Feb")
PARSE_GOAL = Goal("ratio", "at_most", 1.5, "<= 1.5x")
"""parse_cvrf against a plain iterparse of the same bytes (issue 19)."""
IMPORT_GOAL = Goal("ratio", "at_most", 2.0, "<= 2x")
"""The whole import against (plain iterparse + a no-op import RPC) (issue 19)."""
PARSE_PROFILE = "bench/profiles/catalog_import_parse.txt"
IMPORT_PROFILE = "bench/profiles/catalog_import.txt"
SMALL_ROUNDS = 2


def report_rounds(rounds: int, rows: dict[str, Row], runs: list[EndToEnd]) -> None:
    base = rows[ITERPARSE]
    print(f"{rounds} rounds; ratios are to the plain iterparse (median to median, min to min)")
    print_table(
        ["phase", "median ms", "min ms", "max ms", "x iterparse (median)", "x iterparse (min)"],
        [
            [
                row.name,
                f"{row.median * 1000:.1f}",
                f"{row.best * 1000:.1f}",
                f"{max(row.samples) * 1000:.1f}",
                f"{row.median / base.median:.2f}",
                f"{row.best / base.best:.2f}",
            ]
            for row in rows.values()
        ],
    )
    print()
    events = ", ".join(f"{n} {t}" for t, n in sorted(runs[0].events.items()))
    print(f"events per round: {runs[0].total_events} ({events})")
    rates = [run.total_events / run.published for run in runs]
    print(
        f"events/s (events / time until replied and all published): median "
        f"{statistics.median(rates):.0f}, best {max(rates):.0f}"
    )
    tails = [(run.published - run.replied) * 1000 for run in runs]
    print(
        f"after February's reply, the last event reached the sink in: median "
        f"{statistics.median(tails):.1f} ms (min {min(tails):.1f}, max {max(tails):.1f}); "
        f"January replied after median "
        f"{statistics.median(r.first_reply for r in runs) * 1000:.1f} ms, its first event "
        f"reached the sink after median {statistics.median(r.first_event for r in runs) * 1000:.1f}"
        " ms"
    )
    print(
        "end to end, this process's CPU (user+sys): median "
        f"{statistics.median(r.cpu for r in runs) * 1000:.0f} ms per round; machine busy "
        f"(both cores, broker and database included): median "
        f"{statistics.median(r.machine_busy for r in runs):.0%}"
    )
    parse = rows[PARSE_CVRF].median / base.median
    print(
        goal(
            f"parse_cvrf {PARSE_GOAL.describe()} iterparse",
            parse <= PARSE_GOAL.limit,
            f"{parse:.2f}x",
        )
    )
    whole = rows[REPLIED].median / rows[BASELINE].median
    print(
        goal(
            f"import {IMPORT_GOAL.describe()} (iterparse + no-op import RPC)",
            whole <= IMPORT_GOAL.limit,
            f"{whole:.2f}x: {rows[REPLIED].median * 1000:.1f} ms against "
            f"{rows[ITERPARSE].median * 1000:.1f} + {rows[NO_OP].median * 1000:.1f} ms",
        )
    )


def report_trace(trace: Trace, traced: EndToEnd) -> str:
    """Print where the traced round's time went; return the same table as text."""
    print(
        "Where the time goes: one extra end-to-end round, traced (not in the table above): "
        f"send Jan -> reply Feb {traced.replied * 1000:.1f} ms, all published "
        f"{traced.published * 1000:.1f} ms; wall time summed over both imports; a step's "
        "time includes the indented lines below it"
    )
    rows = trace.breakdown(IMPORT_HANDLER, since=traced.started)
    lines = format_table(
        ["step", "calls", "ms"],
        [[name, f"{calls or ''}", f"{seconds * 1000:.1f}"] for name, calls, seconds in rows],
    )
    process = sum(seconds for name, _, seconds in rows if name == "process")
    lines.append(
        "client side and broker (send Jan -> reply Feb minus the pipeline's process): "
        f"{(traced.replied - process) * 1000:.1f} ms"
    )
    print("\n".join(lines))
    return "\n".join(lines)


@dataclass
class Round:
    """What every round needs: the documents, their expected reading, the RPC client and sink."""

    infra: Infra
    documents: Documents
    parsed: Parsed
    elements: int
    requests: list[c.ImportDocument]
    rpc: RpcClient
    sink: Sink

    async def run(self, index: int, rows: dict[str, Row]) -> EndToEnd:
        """One round of every phase, each after the other: parses, no-op RPC, the import."""
        parse_round(self.documents, rows, self.parsed, self.elements)
        no_op = await no_op_imports(self.infra, self.rpc, self.requests, index)
        rows[NO_OP].samples.append(no_op)
        rows[BASELINE].samples.append(rows[ITERPARSE].samples[-1] + no_op)
        result = await end_to_end(
            self.infra, self.rpc, self.sink, self.requests, self.parsed, index
        )
        rows[REPLIED].samples.append(result.replied)
        rows[PUBLISHED].samples.append(result.published)
        print(
            f"round {index}: iterparse {rows[ITERPARSE].samples[-1] * 1000:.1f} ms, "
            f"parse_cvrf {rows[PARSE_CVRF].samples[-1] * 1000:.1f} ms, "
            f"no-op import RPC {no_op * 1000:.1f} ms, "
            f"import {result.replied * 1000:.1f} ms, published "
            f"{result.total_events} events after {result.published * 1000:.1f} ms",
            flush=True,
        )
        return result

    async def traced(self, index: int, trace: Trace) -> EndToEnd:
        return await end_to_end(
            self.infra, self.rpc, self.sink, self.requests, self.parsed, index, trace
        )

    async def profiled(self, index: int) -> str:
        """cProfile of one more import round (this process's main thread)."""
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            await end_to_end(self.infra, self.rpc, self.sink, self.requests, self.parsed, index)
        finally:
            profiler.disable()
        return profile_text(profiler)


async def run(infra: Infra, documents: Documents, rounds: int) -> None:
    parsed = parse_both(documents)
    check(parsed.document_ids == DOCUMENT_IDS, f"documents are {parsed.document_ids}")
    elements = iterparse_end(documents)
    rows = {name: Row(name, []) for name in PHASES}
    started_at = datetime.now(UTC)
    env = await environment(infra)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    runs: list[EndToEnd] = []
    trace = Trace()
    profile = None
    try:
        await bus.declare_exchanges()
        rpc = RpcClient(bus, source="bench", timeout=IMPORT_TIMEOUT_SECONDS)
        await rpc.start()
        sink = Sink()
        one = Round(infra, documents, parsed, elements, import_requests(documents), rpc, sink)
        async with sink_consumer(bus, sink):
            runs.extend([await one.run(index, rows) for index in range(1, rounds + 1)])
            print("traced round ...", flush=True)
            traced = await one.traced(rounds + 1, trace)
            if not IMPORT_GOAL.met(rows[REPLIED].median, rows[BASELINE].median):
                print("profiled round (the import goal is missed) ...", flush=True)
                profile = await one.profiled(rounds + 2)
    finally:
        await bus.close()
    check(all(run.events == runs[0].events for run in runs), "rounds published different events")
    print()
    print_environment(env)
    sizes = ", ".join(f"{path.name} {len(raw) / 1e6:.2f} MB" for path, raw in documents)
    print(f"   documents: {sizes}; {elements} XML elements in all")
    report_parsed(parsed)
    print()
    report_rounds(rounds, rows, runs)
    print()
    breakdown = report_trace(trace, traced)
    save(rounds, documents, elements, rows, runs, breakdown, profile, started_at)


def save(  # noqa: PLR0917 - the run's figures, handed over once
    rounds: int,
    documents: Documents,
    elements: int,
    rows: dict[str, Row],
    runs: list[EndToEnd],
    breakdown: str,
    import_profile: str | None,
    started_at: datetime,
) -> None:
    """bench/results/catalog_import.json: parse against iterparse (goal <= 1.5x), the whole
    import against iterparse + a no-op import RPC (goal <= 2x), and the events' arrival; a
    missed goal writes its profile under bench/profiles/."""
    parse, iterparse = rows[PARSE_CVRF].median, rows[ITERPARSE].median
    parse_profile = None
    if not PARSE_GOAL.met(parse, iterparse):
        profiler = cProfile.Profile()
        profiler.runcall(parse_both, documents)
        parse_profile = write_profile(
            PARSE_PROFILE, "parse_cvrf of both documents (cProfile)", profile_text(profiler)
        )
    import_file = None
    if import_profile is not None:
        import_file = write_profile(
            IMPORT_PROFILE,
            "The catalog import of both documents, one extra round (cProfile of this process's"
            " main thread: the pipeline, the handler, asyncpg, the outbox relay; parse_cvrf runs"
            f" in a worker thread and is profiled in {PARSE_PROFILE} when its goal is missed)."
            f"\n\nWhere the time goes (the traced round):\n{breakdown}",
            import_profile,
        )
    sizes = {path.name: len(raw) for path, raw in documents}
    measures = [
        Measure(
            "MSRC parse (parse_cvrf), Jan + Feb",
            parse * 1000,
            "ms",
            goal=PARSE_GOAL,
            baseline="plain ET.iterparse of the same bytes (end events, each element cleared)",
            baseline_value=iterparse * 1000,
            higher_is_better=False,
            profile=parse_profile,
            note=f"median of {rounds} rounds; {elements} elements in {sum(sizes.values())} bytes",
        ),
        Measure(
            "MSRC import, send Jan -> reply Feb",
            rows[REPLIED].median * 1000,
            "ms",
            goal=IMPORT_GOAL,
            baseline="plain iterparse + a no-op import RPC (same commands, same RPC path)",
            baseline_value=rows[BASELINE].median * 1000,
            higher_is_better=False,
            profile=import_file,
            note=(
                f"median of {rounds} rounds, each on a fresh database; no-op RPC median "
                f"{rows[NO_OP].median * 1000:.1f} ms"
            ),
        ),
        Measure(
            "MSRC import, until every update event reached a queue",
            rows[PUBLISHED].median * 1000,
            "ms",
            baseline="send Jan -> reply Feb",
            baseline_value=rows[REPLIED].median * 1000,
            higher_is_better=False,
            note=f"{runs[0].total_events} events per round, relayed by the outbox with confirms",
        ),
    ]
    results.save(
        "catalog_import",
        measures,
        parameters={"rounds": rounds, "documents": sizes, "elements": elements},
        started_at=started_at,
    )


def write_profile(path: str, what: str, listing: str) -> str:
    """Write a profile (what it covers, then the listing) under bench/profiles/; its path."""
    target = ROOT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{what}\n\n{listing}")
    print(f"profile written to {path}")
    return path


def report_parsed(parsed: Parsed) -> None:
    print(
        f"      parsed: {', '.join(parsed.document_ids)}: updates {parsed.updates}, "
        f"advisories {parsed.advisories}, {len(parsed.kbs)} distinct KBs"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_catalog_import.__doc__))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of every phase")
    parser.add_argument(
        "--small", action="store_true", help=f"a short run: {SMALL_ROUNDS} rounds (about a minute)"
    )
    args = parser.parse_args(argv)
    rounds = SMALL_ROUNDS if args.small else args.rounds
    if rounds < 1:
        parser.error("--rounds must be positive")
    documents = [(path, path.read_bytes()) for path in FILES]
    bench_main(lambda: in_fresh_infra(lambda infra: run(infra, documents, rounds)))


if __name__ == "__main__":
    main()
