"""`GET /content/<sha256>/<filename>`: third-party content for agents, by signed URL.

No token and no database: the URL's signature (libs/domain/content_urls.py) says which
computer may fetch which file until when, so any replica, or an HTTP cache or CDN in front
of it, serves it. Files are read from the catalog's content store (LOCKGATE_CONTENT_DIR):
a deliberate exception to "each service owns its data", because content is immutable and
named by its hash, so reading it needs no coordination with the catalog. Files are streamed
in chunks, never loaded whole; `Range` resumes an interrupted download.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from libs.domain.content_urls import ContentLinks, Refusal, check
from services.catalog.store.content import LocalContentStore
from services.console.models import Problem

CHUNK = 256 * 1024
PROBLEM = "application/problem+json"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

REFUSALS: dict[Refusal, tuple[int, str]] = {
    "expired": (410, "the URL has expired: the computer's next plan carries a fresh one"),
    "not_for_this_computer": (
        403,
        (
            "the signature does not hold for this file, computer and expiry: the URL was "
            "changed, or it was signed for another computer"
        ),
    ),
    "unknown": (404, "no such content: the update was deleted, or the file never existed"),
}


def refused(why: Refusal, detail: str | None = None) -> JSONResponse:
    """Problem details naming why (`title`, and `type` urn:lockgate:content:<why>)."""
    status, text = REFUSALS[why]
    problem = Problem(
        type=f"urn:lockgate:content:{why}", title=why, status=status, detail=detail or text
    )
    return JSONResponse(
        problem.model_dump(),
        status_code=status,
        media_type=PROBLEM,
        headers={"Cache-Control": "no-store"},
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The one range `header` asks for, as (first, last) inclusive; None: the whole file
    (no header, or one we may ignore: several ranges, another unit, not a valid range)."""
    found = _RANGE.fullmatch((header or "").strip())
    if found is None or found.groups() == ("", ""):
        return None
    first_text, last_text = found.groups()
    if not first_text:  # `bytes=-N`: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # not a valid range: ignored (RFC 9110 section 14.2)
    if first >= size:
        return "unsatisfiable"
    return first, size - 1 if not last_text else min(int(last_text), size - 1)


async def _chunks(stream: BinaryIO, first: int, length: int) -> AsyncIterator[bytes]:
    """`length` bytes from `first`, a chunk at a time, read off the event loop."""
    try:
        await asyncio.to_thread(stream.seek, first)
        left = length
        while left > 0:
            block = await asyncio.to_thread(stream.read, min(CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block
    finally:
        stream.close()


def _content_type(filename: str) -> str:
    lowered = filename.lower()
    if lowered.endswith((".msi", ".msp")):
        return "application/x-msi"
    if lowered.endswith(".exe"):
        return "application/vnd.microsoft.portable-executable"
    return "application/octet-stream"


def mount(
    app: FastAPI, links: ContentLinks, content_dir: Path, now: Callable[[], datetime]
) -> None:
    """Add the content route to the console."""
    store = LocalContentStore(content_dir)

    @app.api_route(
        "/content/{sha256}/{filename}",
        methods=["GET", "HEAD"],
        tags=["content"],
        summary="A file of a third-party update, by the signed URL in a computer's plan.",
        include_in_schema=False,
    )
    async def content(
        request: Request,
        *,
        sha256: str,
        filename: str,
        computer: str = "",
        expires: str = "",
        signature: str = "",
    ) -> Response:
        why = check(links.key, sha256, filename, computer, expires, signature, now())
        if why is not None:
            return refused(why)
        path = store.path(sha256)
        try:
            stream = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError):
            return refused("unknown")
        size = os.fstat(stream.fileno()).st_size
        etag = f'"{sha256}"'
        left = max(int(expires) - int(now().timestamp()), 0)
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            # Content never changes under its hash; a cache may keep it while the URL is valid.
            "Cache-Control": f"public, max-age={left}, immutable",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
        }
        if etag in request.headers.get("if-none-match", ""):
            stream.close()
            return Response(status_code=304, headers=headers)
        if_range = request.headers.get("if-range")
        wanted = byte_range(
            request.headers.get("range") if if_range in (None, etag) else None, size
        )
        if wanted == "unsatisfiable":
            stream.close()
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
        status, first, last = 200, 0, size - 1
        if isinstance(wanted, tuple):
            status, (first, last) = 206, wanted
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(last - first + 1)
        if request.method == "HEAD":
            stream.close()
            return Response(status_code=status, headers=headers, media_type=_content_type(filename))
        return StreamingResponse(
            _chunks(stream, first, last - first + 1),
            status_code=status,
            headers=headers,
            media_type=_content_type(filename),
        )
