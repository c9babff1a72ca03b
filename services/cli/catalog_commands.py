"""`lockgate catalog ...`: import MSRC documents, look at updates, expire, settings."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip

from libs.contracts import catalog as c
from libs.settings import Settings
from services.catalog.sources.locations import open_location
from services.cli.common import ApiClient, Output, Progress, with_api

IMPORT_TIMEOUT_SECONDS = 120.0


def _read(location: str) -> bytes:
    with open_location(location) as stream:
        return stream.read()


async def cmd_import_msrc(settings: Settings, out: Output, args: argparse.Namespace) -> int:
    raw = await asyncio.to_thread(_read, args.location)
    request = c.ImportDocument(
        content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode(), label=args.location
    )

    async def run(client: ApiClient) -> int:
        progress = Progress(f"importing {args.location}", len(raw), enabled=not args.json)
        result = await client.call(c.IMPORT_DOCUMENT, request, timeout=IMPORT_TIMEOUT_SECONDS)
        progress.advance(len(raw))
        out.result(
            result,
            (
                f"{result.document_id}: {result.updates_in_document} updates "
                f"({result.published} new, {result.revised} revised, "
                f"{result.unchanged} unchanged), "
                f"{result.advisories_in_document} advisories, {result.supersession_links} new "
                f"supersedence links, {result.superseded} updates newly superseded"
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

    imp = commands.add_parser("import-msrc", help="import an MSRC CVRF document (path or URL)")
    imp.add_argument("location", help="file path or http(s) URL of a CVRF XML document")
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
