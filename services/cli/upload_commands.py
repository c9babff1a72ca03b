"""`lockgate upload|edit|delete`: third-party updates from the command line.

`lockgate upload cancel UPLOAD_ID` abandons an upload that was not committed (its bytes go
and its quota is free at once); `upload` takes `cancel` in place of an installer, which
always ends in .msi, .msp or .exe.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.settings import Settings
from services.cli.common import ApiClient, Output, Progress, with_api

EXIT_USAGE = 2
CANCEL = "cancel"

if TYPE_CHECKING:  # argparse's private generic is not subscriptable at run time
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

CHUNK = 256 * 1024

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
"""Units of a size: decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB), any case."""
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", re.ASCII)


def size_bytes(text: str) -> int:
    """A size given as bytes (`1048576`) or a number with a unit (`500MB`, `2GiB`, `1.5 GB`),
    in bytes (a fraction of a byte is dropped)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give a number of bytes (e.g. 1048576) or a number "
            "with a unit, B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers "
            "of 1024), e.g. 500MB or 2GiB"
        )
    value = int(Decimal(match.group(1)) * SIZE_UNITS[unit])
    if value > c.MAX_REQUIREMENT_BYTES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {value} bytes; at most {c.MAX_REQUIREMENT_BYTES} bytes (1 PiB) is allowed"
        )
    return value


def _pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected KEY=VALUE")
    return key, value


def _rule(text: str) -> c.DetectionRule:
    kind, value = _pair(text, "rule")
    return c.DetectionRule.model_validate({"kind": kind, "value": value})


def _code(text: str) -> c.ReturnCode:
    code, outcome = _pair(text, "return code")
    return c.ReturnCode.model_validate({"code": int(code), "outcome": outcome})


def _declare(installer: Path, extras: list[Path]) -> u.StartUpload:
    """Step 1's declaration: names relative to the installer's folder, sizes from disk."""
    folder = installer.parent
    return u.StartUpload(
        installer=c.UploadFile(path=installer.name, size=installer.stat().st_size),
        extra_files=[
            c.UploadFile(path=p.relative_to(folder).as_posix(), size=p.stat().st_size)
            for p in extras
        ],
    )


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def _send(
    client: ApiClient, upload_id: str, name: str, path: Path, progress: Progress
) -> None:
    data = await asyncio.to_thread(_read, path)
    for offset in range(0, len(data), CHUNK):
        await client.call(
            u.SEND_CHUNK,
            u.SendChunk(
                upload_id=upload_id,
                path=name,
                offset=offset,
                data_b64=base64.b64encode(data[offset : offset + CHUNK]).decode(),
            ),
        )
        progress.advance(len(data[offset : offset + CHUNK]))


async def cmd_upload(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    """`upload INSTALLER ...` uploads; `upload cancel UPLOAD_ID` abandons an upload."""
    if args.installer == CANCEL:
        return await cmd_cancel(settings, out, args)
    if args.upload_id is not None:
        out.error(
            f"upload {args.installer}: unexpected argument {args.upload_id!r} (an upload id "
            f"goes after `{CANCEL}`: lockgate upload {CANCEL} UPLOAD_ID)"
        )
        return EXIT_USAGE
    missing = [flag for flag, given in (("--arch", args.arch), ("--os", args.os)) if not given]
    if missing:
        out.error(f"upload {args.installer}: {' and '.join(missing)} required")
        return EXIT_USAGE
    return await _upload(settings, out, args)


async def cmd_cancel(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    """`upload cancel UPLOAD_ID`: drop what the upload sent and free its quota."""
    if args.upload_id is None:
        out.error(f"upload {CANCEL}: give the upload id (lockgate upload {CANCEL} UPLOAD_ID)")
        return EXIT_USAGE

    async def run(client: ApiClient) -> int:
        ended = await client.call(u.CANCEL_UPLOAD, u.UploadRef(upload_id=args.upload_id))
        text = (
            f"cancelled upload {ended.upload_id}: its bytes are dropped and its space is free"
            if ended.state == "cancelled"
            else f"upload {ended.upload_id} had already ended ({ended.state}); nothing to free"
        )
        out.result(ended, text)
        return 0

    return await with_api(settings, run)


def _left_open(upload_id: str) -> None:
    print(
        f"lockgate: upload {upload_id} is not committed; if it still holds space, "
        f"`lockgate upload {CANCEL} {upload_id}` frees it (abandoned uploads expire on their own)",
        file=sys.stderr,
    )


async def _upload(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    installer = Path(args.installer)
    extras = [Path(p) for p in args.extra]
    folder = installer.parent

    declared = await asyncio.to_thread(_declare, installer, extras)

    async def run(client: ApiClient) -> int:
        session = await client.call(u.START_UPLOAD, declared)
        try:
            return await send(client, session)
        except BaseException:
            if not args.json:  # --json keeps stderr to the one JSON error
                _left_open(session.upload_id)
            raise

    async def send(client: ApiClient, session: u.UploadSession) -> int:
        upload_id = session.upload_id
        progress = Progress(
            f"uploading {installer.name}", session.total_bytes, enabled=not args.json
        )
        await _send(client, upload_id, installer.name, installer, progress)
        for extra in extras:
            await _send(client, upload_id, extra.relative_to(folder).as_posix(), extra, progress)
        # Every request is built (and checked) before the first step is sent.
        steps: list[Callable[[], Awaitable[u.UploadSession]]] = [
            partial(
                client.call,
                u.DESCRIBE,
                u.Describe(
                    upload_id=upload_id,
                    title=args.title,
                    description=args.description,
                    classification=args.classification,
                ),
            ),
            partial(
                client.call,
                u.SET_REQUIREMENTS,
                u.SetRequirements(
                    upload_id=upload_id,
                    architecture=args.arch,
                    operating_systems=args.os,
                    min_free_disk_bytes=args.min_disk,
                    min_memory_bytes=args.min_memory,
                ),
            ),
        ]
        if args.detect:
            steps.append(
                partial(
                    client.call,
                    u.SET_DETECTION,
                    u.SetDetectionRules(upload_id=upload_id, rules=args.detect),
                )
            )
        if args.prerequisite or args.prerequisite_rule:
            steps.append(
                partial(
                    client.call,
                    u.SET_PREREQUISITES,
                    u.SetPrerequisites(
                        upload_id=upload_id, package=args.prerequisite, rules=args.prerequisite_rule
                    ),
                )
            )
        if args.command_line is not None:
            steps.append(
                partial(
                    client.call,
                    u.SET_COMMAND_LINE,
                    u.SetCommandLine(upload_id=upload_id, arguments=args.command_line),
                )
            )
        if args.return_code:
            steps.append(
                partial(
                    client.call,
                    u.SET_RETURN_CODES,
                    u.SetReturnCodes(upload_id=upload_id, codes=args.return_code),
                )
            )
        for step in steps:
            await step()
        detail = await client.call(u.COMMIT_UPLOAD, u.UploadRef(upload_id=upload_id))
        update = detail.update
        out.result(
            detail,
            f"published {update.title} as {update.update_id} "
            f"({update.size_bytes} bytes, sha256 {update.sha256})",
        )
        return 0

    return await with_api(settings, run)


async def cmd_edit(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    request = u.EditUpdate(
        update=args.update,
        title=args.title,
        description=args.description,
        classification=args.classification,
        command_line=args.command_line,
        return_codes=args.return_code or None,
    )

    async def run(client: ApiClient) -> int:
        detail = await client.call(u.EDIT_UPDATE, request)
        out.result(detail, f"{detail.update.title}: revision {detail.update.revision}")
        return 0

    return await with_api(settings, run)


async def cmd_delete(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        deleted = await client.call(u.DELETE_UPDATE, u.DeleteUpdate(update=args.update))
        out.result(deleted, f"deleted {deleted.update_id}, freed {deleted.freed_bytes} bytes")
        return 0

    return await with_api(settings, run)


def add_upload_parser(commands: Commands) -> None:
    """`lockgate upload`: the eight steps in one command."""
    classes = list(get_args(u.ThirdPartyClassification))
    up = commands.add_parser(
        "upload",
        help="upload a third-party installer and publish it (or: upload cancel UPLOAD_ID)",
        usage="%(prog)s INSTALLER --arch ARCH --os OS [OS ...] [options]\n"
        f"       %(prog)s {CANCEL} UPLOAD_ID",
    )
    up.add_argument(
        "installer",
        metavar="INSTALLER",
        help=f".msi, .msp or .exe; or `{CANCEL}` to abandon the upload UPLOAD_ID",
    )
    up.add_argument(
        "upload_id",
        nargs="?",
        metavar="UPLOAD_ID",
        help=f"with `{CANCEL}`: the upload to abandon (its bytes go, its quota is freed)",
    )
    up.add_argument("--extra", nargs="*", default=[], help="extra files from the same folder")
    up.add_argument("--title", "--name", default=None, help="default: read from the installer")
    up.add_argument("--description", default=None)
    up.add_argument("--classification", choices=classes, default="Updates")
    up.add_argument(
        "--arch", choices=["x86", "x64", "both"], default=None, help="required to upload"
    )
    up.add_argument("--os", nargs="+", default=None, help="required to upload, e.g. 'Windows 11'")
    up.add_argument(
        "--min-disk",
        type=size_bytes,
        default=None,
        metavar="SIZE",
        help="free disk space needed, e.g. 500MB, 2GiB or bytes (default: none)",
    )
    up.add_argument(
        "--min-memory",
        type=size_bytes,
        default=None,
        metavar="SIZE",
        help="physical memory needed, e.g. 4GiB or bytes (default: none)",
    )
    up.add_argument("--command-line", "--cmdline", default=None, help="e.g. /S (required for .exe)")
    up.add_argument(
        "--detect",
        type=_rule,
        nargs="*",
        default=[],
        help="KIND=VALUE: file_exists, msi_product_code or registry_key",
    )
    up.add_argument("--prerequisite", default=None, help="update id of a managed package")
    up.add_argument("--prerequisite-rule", type=_rule, nargs="*", default=[])
    up.add_argument(
        "--return-code",
        type=_code,
        nargs="*",
        default=[],
        help="CODE=OUTCOME (success, success_restart_required, failure)",
    )
    up.set_defaults(handler=cmd_upload)


def add_edit_parsers(commands: Commands) -> None:
    """`updates edit` and `updates delete`: third-party updates only."""
    classes = list(get_args(u.ThirdPartyClassification))
    ed = commands.add_parser("edit", help="edit a third-party update")
    ed.add_argument("update", help="update id")
    ed.add_argument("--title", "--name", default=None)
    ed.add_argument("--description", default=None)
    ed.add_argument("--classification", choices=classes, default=None)
    ed.add_argument("--command-line", "--cmdline", default=None)
    ed.add_argument("--return-code", type=_code, nargs="*", default=[])
    ed.set_defaults(handler=cmd_edit)

    de = commands.add_parser("delete", help="delete a third-party update and its content")
    de.add_argument("update", help="update id")
    de.set_defaults(handler=cmd_delete)
