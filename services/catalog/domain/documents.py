"""A source document as an import command carries it: gzip-compressed, base64-encoded."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io

from libs.contracts.catalog import ImportDocument
from libs.service.errors import InvalidInput
from services.catalog.domain.model import SourceDocument
from services.catalog.domain.msrc import parse_cvrf

MAX_DOCUMENT_BYTES = 200 * 1024 * 1024


def document_bytes(command: ImportDocument) -> bytes:
    """The document's own bytes, refused past MAX_DOCUMENT_BYTES (read no further than that)."""
    try:
        packed = base64.b64decode(command.content_gzip_b64, validate=True)
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as unpacked:
            raw = unpacked.read(MAX_DOCUMENT_BYTES + 1)
    except (ValueError, OSError, EOFError) as error:  # binascii.Error is a ValueError
        raise InvalidInput(
            f"content_gzip_b64 is not base64 of gzip data ({error}); send the document "
            "gzip-compressed then base64-encoded",
            field="content_gzip_b64",
        ) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"document larger than {MAX_DOCUMENT_BYTES} bytes", field="content_gzip_b64"
        )
    return raw


def read_document(command: ImportDocument) -> tuple[str, SourceDocument]:
    """The document's SHA-256 (hex, to record the import) and what it says."""
    raw = document_bytes(command)
    return hashlib.sha256(raw).hexdigest(), parse_cvrf(io.BytesIO(raw))
