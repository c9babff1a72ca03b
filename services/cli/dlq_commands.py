"""`lockgate dlq ...`: the dead letters the console keeps (list, show, replay, purge).

Reads need any token; replay and purge an admin token. A replay publishes the message
again to the exchange and routing key it was first sent to, with its message id, so it goes
through the normal path (an inbox that had in fact handled it skips it).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import httpx
from pydantic import BaseModel

from libs.contracts.api import PREFIX
from libs.settings import Settings
from services.cli.common import ApiFailure, Output, problem_text
from services.console.dead_letter_models import (
    DeadLetter,
    DeadLetterList,
    DeadLetterSummary,
    PurgeResult,
    ReplayResult,
)

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

Reply = TypeVar("Reply", bound=BaseModel)
REASON_SHOWN = 70
"""Characters of a reason shown in the list (show and --json have all of it)."""


async def _request(
    settings: Settings,
    method: str,
    path: str,
    reply: type[Reply],
    *,
    json: Mapping[str, str | None] | None = None,
    params: Mapping[str, int | str] | None = None,
) -> Reply:
    """Call one of the console's dead-letter routes; its answer read as `reply`."""
    token = settings.token.get_secret_value() if settings.token else ""
    async with httpx.AsyncClient(
        base_url=settings.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=settings.rpc_timeout_seconds + 60,  # replaying many confirms each publish
    ) as http:
        try:
            response = await http.request(method, PREFIX + path, json=json, params=params)
        except httpx.TransportError as error:
            raise ApiFailure(
                f"cannot reach the console at {settings.url} ({type(error).__name__}); "
                "is it running (python -m services.console) and is LOCKGATE_URL right?"
            ) from None
    if response.status_code >= 400:
        raise ApiFailure(problem_text(response))
    return reply.model_validate_json(response.content)


def _when(instant: datetime | None) -> str:
    return "-" if instant is None else f"{instant:%Y-%m-%d %H:%M:%S}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def row(letter: DeadLetterSummary) -> str:
    """One dead letter as a table row."""
    return (
        f"{letter.dead_letter_id:>6} {_short(letter.queue, 28):<28} "
        f"{_short(letter.message_type or '-', 30):<30} {letter.attempts:>3} "
        f"{_when(letter.last_failed_at)}  {letter.reason_class}: "
        f"{_short(letter.reason.replace(chr(10), ' '), REASON_SHOWN)}"
        + ("  (replayed)" if letter.state == "replayed" else "")
    )


async def cmd_list(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    params: dict[str, int | str] = {"state": args.state, "limit": args.limit, "after": args.after}
    if args.queue is not None:
        params["queue"] = args.queue
    found = await _request(settings, "GET", "/dead-letters", DeadLetterList, params=params)
    lines = [
        f"{'id':>6} {'queue':<28} {'type':<30} {'att':>3} {'last failure':<19}  reason",
        *(row(letter) for letter in found.dead_letters),
    ]
    if not found.dead_letters:
        lines = ["no dead letters" + (f" in {args.queue}" if args.queue else "")]
    if found.next_after is not None:
        lines.append(f"more: lockgate dlq list --after {found.next_after}")
    waiting = ", ".join(f"{q.queue} {q.waiting}" for q in found.queues) or "none"
    lines.append(f"waiting: {waiting}")
    out.result(found, "\n".join(lines))
    return 0


async def cmd_show(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    letter = await _request(settings, "GET", f"/dead-letters/{args.id}", DeadLetter)
    lines = [
        f"dead letter {letter.dead_letter_id} ({letter.state})",
        f"queue:         {letter.queue} (via {letter.dead_letter_queue})",
        f"handler:       {letter.handler or '-'}",
        f"message:       {letter.message_type or '-'} id {letter.message_id}",
        f"reason:        {letter.reason_class}: {letter.reason}",
        (
            f"published to:  {letter.original_exchange or '(default exchange)'} "
            f"routing key {letter.original_routing_key or '-'}"
        ),
        f"attempts:      {letter.attempts}",
        f"first failure: {_when(letter.first_failed_at)}",
        f"last failure:  {_when(letter.last_failed_at)}",
        f"replayed:      {_when(letter.replayed_at)}",
        "headers:",
        *(f"  {name}: {value}" for name, value in sorted(letter.headers.items())),
        f"body ({letter.body_bytes} bytes):",
        letter.body_text
        if letter.body_text is not None
        else f"(not UTF-8 text; base64) {letter.body_base64}",
    ]
    out.result(letter, "\n".join(lines))
    return 0


async def cmd_replay(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    if args.id is not None and (args.all or args.queue is not None):
        raise ApiFailure("replay takes an ID, or --all (with --queue Q to limit it), not both")
    if args.id is None and not args.all:
        raise ApiFailure("replay what? give an ID, or --all (optionally --queue Q)")
    if args.id is not None:
        result = await _request(settings, "POST", f"/dead-letters/{args.id}/replay", ReplayResult)
    else:
        result = await _request(
            settings, "POST", "/dead-letters/replay", ReplayResult, json={"queue": args.queue}
        )
    lines = [f"replayed {len(result.replayed)}: {' '.join(map(str, result.replayed)) or '-'}"]
    lines += [f"not replayed {f.dead_letter_id}: {f.error}" for f in result.failed]
    out.result(result, "\n".join(lines))
    return 1 if result.failed else 0


async def cmd_purge(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    if args.id is not None:
        if args.queue is not None or args.all:
            raise ApiFailure("purge takes an ID, or --queue Q, or --all, one of them")
        result = await _request(settings, "DELETE", f"/dead-letters/{args.id}", PurgeResult)
    elif args.queue is not None:
        result = await _request(
            settings, "DELETE", "/dead-letters", PurgeResult, params={"queue": args.queue}
        )
    elif args.all:
        result = await _request(
            settings, "DELETE", "/dead-letters", PurgeResult, params={"everything": "true"}
        )
    else:
        raise ApiFailure("purge what? give an ID, --queue Q, or --all for every dead letter")
    out.result(result, f"purged {result.purged}")
    return 0


def _id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(
            f"ID {text!r} is not a dead letter id: give the number `lockgate dlq list` shows"
        )
    return value


def add_parsers(sub: Commands) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="dead letters, oldest first, and counts per queue")
    listing.add_argument("--queue", help="only this queue's (its name or its .dlq name)")
    listing.add_argument(
        "--state", choices=["waiting", "replayed", "all"], default="waiting", help="default waiting"
    )
    listing.add_argument("--limit", type=int, default=100, help="page size (1-1000)")
    listing.add_argument("--after", type=int, default=0, help="ids after this one (next page)")
    listing.set_defaults(handler=cmd_list)
    show = commands.add_parser("show", help="one dead letter: reason, origin, headers, body")
    show.add_argument("id", type=_id)
    show.set_defaults(handler=cmd_show)
    replay = commands.add_parser(
        "replay", help="publish again to the original exchange and routing key (admin)"
    )
    replay.add_argument("id", type=_id, nargs="?")
    replay.add_argument("--all", action="store_true", help="every waiting dead letter")
    replay.add_argument("--queue", help="with --all: only this queue's")
    replay.set_defaults(handler=cmd_replay)
    purge = commands.add_parser("purge", help="remove dead letters from the store (admin)")
    purge.add_argument("id", type=_id, nargs="?")
    purge.add_argument("--queue", help="every dead letter of this queue")
    purge.add_argument("--all", action="store_true", help="every dead letter")
    purge.set_defaults(handler=cmd_purge)
