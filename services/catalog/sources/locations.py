"""Where source documents are read from: a local path or an http(s) URL (the CLI sends them)."""

from __future__ import annotations

import contextlib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

FETCH_TIMEOUT_SECONDS = 60.0
"""How long an HTTP(S) fetch may wait for a connection or a read before it fails."""

REMOTE_SCHEMES = frozenset({"http", "https"})


class UnsupportedLocation(ValueError):
    """A location that is neither a local path nor an http(s) URL."""


def open_location(
    location: str, *, timeout: float = FETCH_TIMEOUT_SECONDS
) -> contextlib.AbstractContextManager[BinaryIO]:
    """Open a local path or an http(s) URL as a binary stream, read as it arrives."""
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme in REMOTE_SCHEMES:
        return _open_url(location, timeout)
    if scheme:
        allowed = ", ".join(sorted(REMOTE_SCHEMES))
        raise UnsupportedLocation(
            f"location {location!r} has scheme {scheme!r}: use a local path or one of {allowed}"
        )
    return Path(location).open("rb")


@contextlib.contextmanager
def _open_url(url: str, timeout: float) -> Iterator[BinaryIO]:
    """Stream an HTTP(S) response body; errors (status, network, timeout) propagate."""
    # S310: open_location only passes URLs whose scheme it has checked to be http or https.
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        yield response
