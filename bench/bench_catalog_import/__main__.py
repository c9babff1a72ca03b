"""python -m bench.bench_catalog_import: the rounds, one traced round, then the figures."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench import bench_catalog_import
from bench.bench_catalog_import.end_to_end import (
    IMPORT_HANDLER,
    EndToEnd,
    Sink,
    end_to_end,
    sink_consumer,
)
from bench.bench_catalog_import.parse import (
    ITERPARSE,
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
from bench.common.infra import bench_main, check, description, environment, in_fresh_infra
from bench.common.report import goal, print_environment, print_table
from bench.common.tracing import Trace
from libs.bus import Bus, RpcClient
from services.cli.catalog_commands import IMPORT_TIMEOUT_SECONDS
from tests.support.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
FILES = (ROOT / "data" / "msrc" / "cvrf-2026-Jan.xml", ROOT / "data" / "msrc" / "cvrf-2026-Feb.xml")
DOCUMENT_IDS = ("2026-Jan", "2026-Feb")
GOAL = 2.0


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
    for name, row in (("parse_cvrf", rows[PARSE_CVRF]), ("end-to-end import", rows[REPLIED])):
        ratio = row.median / base.median
        print(goal(f"<= {GOAL:g}x for {name}", ratio <= GOAL, f"{ratio:.2f}x by medians"))


def report_trace(trace: Trace, traced: EndToEnd) -> None:
    print(
        "Where the time goes: one extra end-to-end round, traced (not in the table above): "
        f"send Jan -> reply Feb {traced.replied * 1000:.1f} ms, all published "
        f"{traced.published * 1000:.1f} ms; wall time summed over both imports; a step's "
        "time includes the indented lines below it"
    )
    rows = trace.breakdown(IMPORT_HANDLER, since=traced.started)
    print_table(
        ["step", "calls", "ms"],
        [[name, f"{calls or ''}", f"{seconds * 1000:.1f}"] for name, calls, seconds in rows],
    )
    process = sum(seconds for name, _, seconds in rows if name == "process")
    print(
        "client side and broker (send Jan -> reply Feb minus the pipeline's process): "
        f"{(traced.replied - process) * 1000:.1f} ms"
    )


async def run(infra: Infra, documents: Documents, rounds: int) -> None:
    parsed = parse_both(documents)
    check(parsed.document_ids == DOCUMENT_IDS, f"documents are {parsed.document_ids}")
    elements = iterparse_end(documents)
    requests = import_requests(documents)
    rows = {name: Row(name, []) for name in PHASES}
    env = await environment(infra)
    bus = await Bus.connect(infra.amqp_url, name="lockgate-bench")
    runs: list[EndToEnd] = []
    sink = Sink()
    trace = Trace()
    try:
        await bus.declare_exchanges()
        rpc = RpcClient(bus, source="bench", timeout=IMPORT_TIMEOUT_SECONDS)
        await rpc.start()
        async with sink_consumer(bus, sink):
            for index in range(1, rounds + 1):
                parse_round(documents, rows, parsed, elements)
                result = await end_to_end(infra, rpc, sink, requests, parsed, index)
                runs.append(result)
                rows[REPLIED].samples.append(result.replied)
                rows[PUBLISHED].samples.append(result.published)
                print(
                    f"round {index}: iterparse {rows[ITERPARSE].samples[-1] * 1000:.1f} ms, "
                    f"parse_cvrf {rows[PARSE_CVRF].samples[-1] * 1000:.1f} ms, "
                    f"import {result.replied * 1000:.1f} ms, published "
                    f"{result.total_events} events after {result.published * 1000:.1f} ms",
                    flush=True,
                )
            print("traced round ...", flush=True)
            traced = await end_to_end(infra, rpc, sink, requests, parsed, rounds + 1, trace)
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
    report_trace(trace, traced)


def report_parsed(parsed: Parsed) -> None:
    print(
        f"      parsed: {', '.join(parsed.document_ids)}: updates {parsed.updates}, "
        f"advisories {parsed.advisories}, {len(parsed.kbs)} distinct KBs"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(bench_catalog_import.__doc__))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of every phase")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    documents = [(path, path.read_bytes()) for path in FILES]
    bench_main(lambda: in_fresh_infra(lambda infra: run(infra, documents, args.rounds)))


if __name__ == "__main__":
    main()
