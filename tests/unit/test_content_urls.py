"""Signed content URLs (libs/domain/content_urls.py) and the settings that sign them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from pydantic import SecretStr

from libs.domain.content_urls import (
    DAY,
    ContentLinks,
    check,
    content_path,
    expiry,
    signature,
    signed_url,
)
from libs.settings import ContentSigningKeyMissing, Settings
from libs.settings.settings import DEVELOPMENT_CONTENT_KEY

KEY = b"k" * 32
LINKS = ContentLinks(key=KEY, base_url="https://cdn.example.org/", days=7)
SHA = "9b0e5f4c3a2d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
NOW = datetime(2026, 2, 11, 7, 42, 5, tzinfo=UTC)


def parts(url: str) -> tuple[str, str, str, str, str]:
    """(sha256, filename, computer, expires, signature) of a signed URL, as the console sees
    them (path segments decoded)."""
    split = urlsplit(url)
    _, _, sha256, filename = split.path.split("/")
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    return sha256, unquote(filename), query["computer"], query["expires"], query["signature"]


def test_a_signed_url_is_served_to_its_computer_until_it_expires() -> None:
    signed = signed_url(LINKS, SHA, "7z 24.09 (x64).msi", "pc-0042", NOW)
    assert signed.url.startswith(
        f"https://cdn.example.org/content/{SHA}/7z%2024.09%20%28x64%29.msi?"
    )
    assert check(KEY, *parts(signed.url), NOW) is None
    assert check(KEY, *parts(signed.url), signed.expires_at - timedelta(seconds=1)) is None
    assert check(KEY, *parts(signed.url), signed.expires_at) == "expired"


def test_expiry_is_at_least_the_days_asked_rounded_up_to_a_utc_midnight() -> None:
    expires = expiry(NOW, 7)
    assert expires % DAY == 0
    assert datetime.fromtimestamp(expires, UTC) == datetime(2026, 2, 19, tzinfo=UTC)
    midnight = datetime(2026, 2, 11, tzinfo=UTC)
    assert expiry(midnight, 7) == int((midnight + timedelta(days=7)).timestamp())


def test_the_same_day_signs_the_same_url() -> None:
    """A plan recomputed during the day keeps its digest: its URLs do not move every second."""
    first = signed_url(LINKS, SHA, "a.msi", "pc-1", NOW)
    later = signed_url(LINKS, SHA, "a.msi", "pc-1", NOW + timedelta(hours=10))
    assert first == later
    tomorrow = signed_url(LINKS, SHA, "a.msi", "pc-1", NOW + timedelta(days=1))
    assert tomorrow.expires_at == first.expires_at + timedelta(days=1)


@pytest.mark.parametrize(
    "index",
    [0, 1, 2, 3, 4],
    ids=["sha256", "filename", "computer", "expires", "signature"],
)
def test_changing_any_part_breaks_the_signature(index: int) -> None:
    signed = signed_url(LINKS, SHA, "a.msi", "pc-0042", NOW)
    given = list(parts(signed.url))
    changes = [
        "0" * 64,
        "b.msi",
        "pc-0043",
        str(int(given[3]) + DAY),
        signature(KEY, SHA, "a.msi", "pc-0043", int(given[3])),
    ]
    given[index] = changes[index]
    sha256, filename, computer, expires, sent = given
    assert check(KEY, sha256, filename, computer, expires, sent, NOW) == "not_for_this_computer"


def test_another_key_does_not_verify() -> None:
    signed = signed_url(LINKS, SHA, "a.msi", "pc-0042", NOW)
    assert check(b"x" * 32, *parts(signed.url), NOW) == "not_for_this_computer"


@pytest.mark.parametrize("expires", ["", "soon", "-5", "1" * 20])
def test_a_malformed_expiry_is_refused_not_raised(expires: str) -> None:
    sha256, filename, computer, _, given = parts(signed_url(LINKS, SHA, "a", "pc", NOW).url)
    assert check(KEY, sha256, filename, computer, expires, given, NOW) == "not_for_this_computer"


def test_a_missing_or_non_ascii_signature_is_refused() -> None:
    sha256, filename, computer, expires, _ = parts(signed_url(LINKS, SHA, "a", "pc", NOW).url)
    assert check(KEY, sha256, filename, computer, expires, "", NOW) == "not_for_this_computer"
    assert check(KEY, sha256, filename, computer, expires, "é\udcff", NOW) == (
        "not_for_this_computer"
    )


def test_a_genuine_signature_over_something_not_a_hash_is_unknown() -> None:
    expires = str(expiry(NOW, 1))
    given = signature(KEY, "../../etc", "passwd", "pc", int(expires))
    assert check(KEY, "../../etc", "passwd", "pc", expires, given, NOW) == "unknown"


def test_the_path_signed_is_the_path_served() -> None:
    assert content_path(SHA, "a b.msi") == f"/content/{SHA}/a b.msi"


@pytest.mark.parametrize("name", ["", "a/b.msi", "a\nb"])
def test_a_file_name_must_be_one_segment(name: str) -> None:
    with pytest.raises(ValueError, match="one non-empty path segment"):
        signed_url(LINKS, SHA, name, "pc", NOW)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("LOCKGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.usefixtures("clean_env")
def test_the_development_key_signs_only_loopback_urls() -> None:
    assert Settings().content_links().key == DEVELOPMENT_CONTENT_KEY
    assert Settings(content_url="http://localhost:8080").content_links().key == (
        DEVELOPMENT_CONTENT_KEY
    )
    with pytest.raises(ContentSigningKeyMissing, match="LOCKGATE_CONTENT_SIGNING_KEY is not set"):
        Settings(content_url="https://lockgate.example.org").content_links()


def test_a_configured_key_is_used_and_must_be_long_enough(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LOCKGATE_CONTENT_SIGNING_KEY", "s" * 40)
    clean_env.setenv("LOCKGATE_CONTENT_URL", "https://lockgate.example.org")
    clean_env.setenv("LOCKGATE_CONTENT_URL_DAYS", "3")
    links = Settings().content_links()
    assert (links.key, links.base_url, links.days) == (b"s" * 40, "https://lockgate.example.org", 3)
    short = Settings(content_signing_key=SecretStr("short"))
    with pytest.raises(ContentSigningKeyMissing, match="at least 32"):
        short.content_links()
