"""The CPU-only phases: plain XML parses of the two documents, parse_cvrf, the CLI's encoding."""

from __future__ import annotations

import base64
import gc
import gzip
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from xml.etree import ElementTree as ET

from bench.common.infra import check
from libs.contracts import catalog as c
from services.catalog.domain.msrc import parse_cvrf

T = TypeVar("T")

Documents = list[tuple[Path, bytes]]

ITERPARSE = "iterparse"
START_END = "iterparse, start+end events"
WHOLE_TREES = "ET.parse (whole trees)"
PARSE_CVRF = "parse_cvrf"
ENCODE = "client gzip + base64 (before the clock)"
NO_OP = "no-op import RPC: send Jan -> reply Feb"
BASELINE = "baseline: iterparse + no-op import RPC"
REPLIED = "end to end: send Jan -> reply Feb"
PUBLISHED = "end to end: ... and every event at the sink"
PHASES = (
    ITERPARSE,
    START_END,
    WHOLE_TREES,
    PARSE_CVRF,
    ENCODE,
    NO_OP,
    BASELINE,
    REPLIED,
    PUBLISHED,
)


@dataclass(frozen=True)
class Row:
    """One phase's seconds, one sample per round."""

    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)


def timed(work: Callable[[], T]) -> tuple[float, T]:
    """Seconds `work` takes (after a full collection, so no earlier garbage is paid here)."""
    gc.collect()
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def iterparse_end(documents: Documents) -> int:
    """The cheapest full parse: every element built, handed over at its end, then cleared."""
    elements = 0
    for _, raw in documents:
        # S314: trusted local files, and this is the parser parse_cvrf itself uses.
        for _, element in ET.iterparse(io.BytesIO(raw)):  # noqa: S314
            elements += 1
            element.clear()
    return elements


def iterparse_start_end(documents: Documents) -> int:
    """The same with "start" and "end" events, as parse_cvrf asks for; cleared at each end."""
    elements = 0
    for _, raw in documents:
        for event, element in ET.iterparse(io.BytesIO(raw), events=("start", "end")):  # noqa: S314
            if event == "end":
                elements += 1
                element.clear()
    return elements


def whole_trees(documents: Documents) -> list[ET.ElementTree[ET.Element]]:
    """`ET.parse` of each file: the whole tree in memory, nothing cleared (counted untimed)."""
    return [ET.parse(io.BytesIO(raw)) for _, raw in documents]  # noqa: S314


@dataclass(frozen=True)
class Parsed:
    """What parse_cvrf read of the two documents."""

    document_ids: tuple[str, ...]
    updates: tuple[int, ...]
    advisories: tuple[int, ...]
    kbs: frozenset[str]


def parse_both(documents: Documents) -> Parsed:
    parsed = [parse_cvrf(io.BytesIO(raw)) for _, raw in documents]
    return Parsed(
        document_ids=tuple(d.document_id for d in parsed),
        updates=tuple(len(d.updates) for d in parsed),
        advisories=tuple(len(d.advisories) for d in parsed),
        kbs=frozenset(u.kb for d in parsed for u in d.updates),
    )


def import_requests(documents: Documents) -> list[c.ImportDocument]:
    """The commands exactly as `lockgate catalog import-msrc <path>` builds them."""
    return [
        c.ImportDocument(
            content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode(), label=str(path)
        )
        for path, raw in documents
    ]


def parse_round(documents: Documents, rows: dict[str, Row], parsed: Parsed, elements: int) -> None:
    """One round of every parse phase, checked against the first round's results."""
    for name, work in (
        (ITERPARSE, lambda: iterparse_end(documents)),
        (START_END, lambda: iterparse_start_end(documents)),
    ):
        seconds, count = timed(work)
        check(count == elements, f"{name} saw {count} elements, not {elements}")
        rows[name].samples.append(seconds)
    seconds, trees = timed(lambda: whole_trees(documents))
    count = sum(1 for tree in trees for _ in tree.iter())
    check(count == elements, f"ET.parse built {count} elements, not {elements}")
    rows[WHOLE_TREES].samples.append(seconds)
    del trees
    seconds, again = timed(lambda: parse_both(documents))
    check(again == parsed, f"parse_cvrf read {again}, not {parsed}")
    rows[PARSE_CVRF].samples.append(seconds)
    seconds, _ = timed(lambda: import_requests(documents))
    rows[ENCODE].samples.append(seconds)
