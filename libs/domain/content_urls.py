"""Signed, expiring content URLs: the scheduler signs them into plans, the console checks them.

A URL names one file of a third-party update's content for one computer until one instant:
`<base>/content/<sha256>/<filename>?computer=<id>&expires=<epoch seconds>&signature=<sig>`.
The signature is HMAC-SHA256, keyed by LOCKGATE_CONTENT_SIGNING_KEY, over the path, the
computer id and the expiry, so any console replica (or a plain HTTP cache in front of it)
can serve the file without a database look-up, and a URL given to one computer is useless
to another. Expiries are rounded up to a UTC day boundary: a plan recomputed during the day
signs the same URLs, so its digest (and what is sent to the agent) does not change each time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote, urlencode

SHA256 = re.compile(r"^[0-9a-f]{64}$")
DAY = 86_400
MIN_KEY_BYTES = 32
"""A key shorter than this is refused (HMAC-SHA256 keys shorter than the hash weaken it)."""

Refusal = Literal["expired", "not_for_this_computer", "unknown"]
"""Why a download is refused: the URL's time is up, its signature does not hold (tampered,
or signed for another computer), or the signature holds but no such content exists."""


@dataclass(frozen=True)
class ContentLinks:
    """How this deployment signs content URLs."""

    key: bytes
    base_url: str
    """Where agents reach the console (LOCKGATE_CONTENT_URL), without a trailing slash."""
    days: int
    """At least this many days of validity (LOCKGATE_CONTENT_URL_DAYS), rounded up to a day."""


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


def content_path(sha256: str, filename: str) -> str:
    """The path signed and served: `/content/<sha256>/<filename>` (filename not encoded)."""
    return f"/content/{sha256}/{filename}"


def expiry(now: datetime, days: int) -> int:
    """Epoch seconds at least `days` days after `now`, rounded up to the next UTC midnight."""
    at_least = int((now + timedelta(days=days)).timestamp())
    return -(-at_least // DAY) * DAY


def signature(key: bytes, sha256: str, filename: str, computer_id: str, expires: int) -> str:
    """HMAC-SHA256 over path, computer and expiry (newline-separated; none may hold a
    newline: computer ids and hashes cannot, file names are checked), URL-safe base64."""
    message = "\n".join((content_path(sha256, filename), computer_id, str(expires)))
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_url(
    links: ContentLinks, sha256: str, filename: str, computer_id: str, now: datetime
) -> SignedUrl:
    """The URL this computer downloads this file by, and when it stops working."""
    if "\n" in filename or "/" in filename or not filename:
        raise ValueError(f"filename {filename!r}: one non-empty path segment, no newline")
    expires = expiry(now, links.days)
    query = urlencode(
        {
            "computer": computer_id,
            "expires": expires,
            "signature": signature(links.key, sha256, filename, computer_id, expires),
        }
    )
    path = f"/content/{sha256}/{quote(filename, safe='')}"
    return SignedUrl(
        url=f"{links.base_url.rstrip('/')}{path}?{query}",
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def check(  # noqa: PLR0917 - the parts of one URL, each a different thing
    key: bytes,
    sha256: str,
    filename: str,
    computer_id: str,
    expires: str,
    given: str,
    now: datetime,
) -> Refusal | None:
    """None when the URL may be served now, else why not (before any file is looked at).

    The signature is checked first, in constant time: a URL whose path, computer or expiry
    was changed is `not_for_this_computer`; only a genuine URL can be `expired`.
    """
    if not expires.isdigit() or len(expires) > 12 or not given:
        return "not_for_this_computer"
    expected = signature(key, sha256, filename, computer_id, int(expires))
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "not_for_this_computer"
    if now.timestamp() >= int(expires):
        return "expired"
    if not SHA256.fullmatch(sha256):
        return "unknown"
    return None
