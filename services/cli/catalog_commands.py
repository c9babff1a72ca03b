"""`lockgate catalog ...`: import MSRC documents, look at updates, expire, settings."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from libs.contracts import catalog as c
from libs.settings import Settings
from services.catalog.domain.msrc import InvalidDocument, parse_cvrf
from services.catalog.sources.locations import open_location
from services.catalog.sources.manifest import (
    MANIFEST_NAME,
    ManifestError,
    VerifiedFile,
    verify_folder,
    write_manifest,
)
from services.cli.common import EXIT_FAILED, ApiClient, ApiFailure, Output, Progress, with_api

IMPORT_TIMEOUT_SECONDS = 120.0


def _read(location: str) -> bytes:
    with open_location(location) as stream:
        return stream.read()


async def cmd_import_msrc(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    if await asyncio.to_thread(Path(args.location).is_dir):
        return await _import_folder(settings, out, args)
    # `lockgate demo` calls this with only a location.
    if getattr(args, "write_manifest", False) or getattr(args, "verify_only", False):
        out.error(
            f"{args.location} is not a folder: --write-manifest and --verify-only take the "
            "folder of documents"
        )
        return EXIT_FAILED
    raw = await asyncio.to_thread(_read, args.location)
    request = c.ImportDocument(
        content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode(), label=args.location
    )

    async def run(client: ApiClient) -> int:
        progress = Progress(f"importing {args.location}", len(raw), enabled=not args.json)
        result = await client.call(c.IMPORT_DOCUMENT, request, timeout=IMPORT_TIMEOUT_SECONDS)
        progress.advance(len(raw))
        out.result(result, _import_text(result))
        return 0

    return await with_api(settings, run)


def _import_text(result: c.ImportResult) -> str:
    return (
        f"{result.document_id}: {result.updates_in_document} updates "
        f"({result.published} new, {result.revised} revised, "
        f"{result.unchanged} unchanged), "
        f"{result.advisories_in_document} advisories, {result.supersession_links} new "
        f"supersedence links, {result.superseded} updates newly superseded"
    )


@dataclass(frozen=True)
class _Prepared:
    """A verified document of the folder, read, parsed and packed for the import command."""

    file: VerifiedFile
    document_id: str
    order: tuple[str, str]
    request: c.ImportDocument


def _prepare(file: VerifiedFile) -> _Prepared:
    """Read the verified document again (refused if it changed since it was verified) and
    parse it here first, so a document the catalog would refuse refuses the whole folder
    before anything of it is imported."""
    raw = file.path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != file.sha256:
        raise ManifestError(f"{file.path.name!r} changed after it was verified")
    try:
        document = parse_cvrf(io.BytesIO(raw))
    except InvalidDocument as error:
        raise ManifestError(
            f"{file.path.name!r} matches {MANIFEST_NAME} but is not an MSRC CVRF document the "
            f"catalog can import: {error}"
        ) from None
    return _Prepared(
        file=file,
        document_id=document.document_id,
        order=(document.release_date.isoformat(), document.document_id),
        request=c.ImportDocument(
            content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode(),
            label=f"{file.path} (sha256 {file.sha256})",
        ),
    )


def _verified_documents(folder: Path) -> tuple[list[VerifiedFile], list[_Prepared]]:
    """Every file of the folder verified against SHA256SUMS, and its CVRF documents parsed,
    oldest release first (so a later month supersedes an earlier one as it arrives)."""
    verified = verify_folder(folder)
    documents = [f for f in verified if f.is_document]
    if not documents:
        raise ManifestError(f"{folder} holds no CVRF document (*.xml) to import")
    return verified, sorted((_prepare(f) for f in documents), key=lambda p: p.order)


async def _import_folder(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    """`import-msrc <folder>`: verify the folder against its manifest, then import each
    document in release order; or only write the manifest (--write-manifest) or only verify
    (--verify-only). A refused folder imports nothing."""
    folder = Path(args.location)
    try:
        if getattr(args, "write_manifest", False):
            path, listed = await asyncio.to_thread(write_manifest, folder)
            out.result({"manifest": str(path), "files": listed}, f"wrote {path} ({listed} files)")
            return 0
        verified, prepared = await asyncio.to_thread(_verified_documents, folder)
    except ManifestError as error:
        out.error(str(error))
        return EXIT_FAILED
    files = [{"file": f.path.name, "sha256": f.sha256} for f in verified]
    if getattr(args, "verify_only", False):
        out.result(
            {
                "folder": str(folder),
                "verified": files,
                "documents": [p.document_id for p in prepared],
            },
            f"{len(verified)} files match {folder / MANIFEST_NAME}; would import "
            + ", ".join(f"{p.document_id} ({p.file.path.name})" for p in prepared),
        )
        return 0

    async def run(client: ApiClient) -> int:
        results: list[c.ImportResult] = []
        for item in prepared:
            try:
                results.append(
                    await client.call(
                        c.IMPORT_DOCUMENT, item.request, timeout=IMPORT_TIMEOUT_SECONDS
                    )
                )
            except ApiFailure as error:
                done = ", ".join(r.document_id for r in results) or "none"
                raise ApiFailure(
                    f"{item.file.path.name}: {error} (imported before it: {done}; importing "
                    "the folder again is safe, a document imported twice changes nothing)"
                ) from None
        out.result(
            {"folder": str(folder), "verified": files, "imports": results},
            "\n".join(
                [f"{len(verified)} files match {folder / MANIFEST_NAME}"]
                + [_import_text(r) for r in results]
            ),
        )
        return 0

    return await with_api(settings, run)


def _line(update: c.UpdateSnapshot) -> str:
    flags = (
        ("superseded " if update.superseded_by else "")
        + ("expired " if update.expired else "")
        + ("not-offered" if not update.offered else "")
    )
    return (
        f"KB{update.kb or '-':<8} {update.classification:<17} {update.severity or '-':<9} "
        f"{update.release_date:%Y-%m-%d}  {update.title}  {flags}".rstrip()
    )


async def cmd_list(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    query = c.ListUpdates(
        superseded=args.superseded,
        expired=args.expired,
        product_family=args.product,
        limit=args.limit,
    )

    async def run(client: ApiClient) -> int:
        found = await client.call(c.LIST_UPDATES, query)
        lines = [_line(u) for u in found.updates] + [f"{len(found.updates)} of {found.total}"]
        out.result(found, "\n".join(lines))
        return 0

    return await with_api(settings, run)


def _detail_text(detail: c.UpdateDetail) -> str:
    u = detail.update
    return "\n".join(
        [
            _line(u),
            f"id {u.update_id} revision {u.revision}",
            f"products: {', '.join(p.name for p in u.products)}",
            f"CVEs: {', '.join(u.cves)}",
            f"restart: {u.restart}",
            f"supersedes: {', '.join('KB' + kb for kb in u.supersedes) or '-'}",
            f"superseded by: {', '.join('KB' + kb for kb in u.superseded_by_kbs) or '-'}",
            f"expired: {detail.expired_at.isoformat() if detail.expired_at else 'no'}",
            f"offered: {'yes' if u.offered else 'no, ' + (u.not_offered_because or '')}",
        ]
    )


async def cmd_show(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        detail = await client.call(c.GET_UPDATE, c.GetUpdate(update=args.update))
        out.result(detail, _detail_text(detail))
        return 0

    return await with_api(settings, run)


async def cmd_expire(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        detail = await client.call(
            c.EXPIRE_UPDATE, c.ExpireUpdate(update=args.update, reason=args.reason)
        )
        out.result(detail, _detail_text(detail))
        return 0

    return await with_api(settings, run)


async def cmd_settings(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    async def run(client: ApiClient) -> int:
        if args.products is None and args.classifications is None:
            view = await client.call(c.GET_SETTINGS, c.GetSettings())
        else:
            view = await client.call(
                c.CHANGE_SETTINGS,
                c.ChangeSettings.model_validate(
                    {"products": args.products, "classifications": args.classifications}
                ),
            )
        out.result(
            view,
            "\n".join(
                [
                    f"products: {', '.join(view.settings.products)}",
                    f"classifications: {', '.join(view.settings.classifications)}",
                    f"available products: {', '.join(view.available_products)}",
                ]
            ),
        )
        return 0

    return await with_api(settings, run)


def _tristate(value: str) -> bool | None:
    return {"yes": True, "no": False, "any": None}[value]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]  # argparse's private generic
    """`lockgate catalog` and its subcommands."""
    catalog = sub.add_parser("catalog", help="the update catalog")
    commands = catalog.add_subparsers(dest="catalog_command", required=True)

    imp = commands.add_parser(
        "import-msrc",
        help="import an MSRC CVRF document (path or URL), or a folder of them checked against "
        f"its {MANIFEST_NAME} (disconnected networks)",
    )
    imp.add_argument(
        "location",
        help="file path or http(s) URL of a CVRF XML document, or a folder of *.xml documents "
        f"with a {MANIFEST_NAME} manifest covering every file in it",
    )
    imp.add_argument(
        "--write-manifest",
        action="store_true",
        help=f"write the folder's {MANIFEST_NAME} (on the connected side) instead of importing",
    )
    imp.add_argument(
        "--verify-only",
        action="store_true",
        help=f"check the folder against its {MANIFEST_NAME} and its documents, import nothing",
    )
    imp.set_defaults(handler=cmd_import_msrc)

    lst = commands.add_parser("list", help="list updates")
    lst.add_argument("--superseded", type=_tristate, default=None, metavar="yes|no|any")
    lst.add_argument("--expired", type=_tristate, default=None, metavar="yes|no|any")
    lst.add_argument("--product", default=None, help="product family, e.g. Windows")
    lst.add_argument("--limit", type=int, default=1000)
    lst.set_defaults(handler=cmd_list)

    show = commands.add_parser("show", help="one update and its supersession chain")
    show.add_argument("update", help="KB number or update id")
    show.set_defaults(handler=cmd_show)

    exp = commands.add_parser("expire", help="expire an update: it can no longer be approved")
    exp.add_argument("update", help="KB number or update id")
    exp.add_argument("--reason", default="expired by an operator")
    exp.set_defaults(handler=cmd_expire)

    st = commands.add_parser("settings", help="show or change offered products/classifications")
    st.add_argument("--products", nargs="*", default=None)
    st.add_argument("--classifications", nargs="*", default=None)
    st.set_defaults(handler=cmd_settings)
