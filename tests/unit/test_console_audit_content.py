"""What the audit log keeps of a request (services/console/audit.py), without a console."""

from __future__ import annotations

import json

import pytest

from services.console.audit import REMOVED, request_content, should_record, without


def test_secrets_are_removed_wherever_they_sit() -> None:
    body = {
        "name": "ops",
        "token": "lg_secret",
        "nested": [{"client_secret": "s1", "Password": "p1", "api-key": "k1", "keyboard": "x"}],
        "signing_key": {"anything": "below"},
    }
    kept = request_content(b"", json.dumps(body).encode(), 1)
    assert kept.kept == {
        "body": {
            "name": "ops",
            "token": REMOVED,
            "nested": [
                {"client_secret": REMOVED, "Password": REMOVED, "api-key": REMOVED, "keyboard": "x"}
            ],
            "signing_key": REMOVED,
        }
    }
    assert {"lg_secret", "s1", "p1", "k1", "below"} <= kept.hidden


def test_base64_and_long_text_are_kept_by_size() -> None:
    body = {"data_b64": "QUJD" * 1000, "note": "n" * 5000, "short": "ok"}
    kept = request_content(b"", json.dumps(body).encode(), 1)
    assert kept.kept == {
        "body": {
            "data_b64": "[base64: 3000 bytes, not kept]",
            "note": "[text: 5000 characters, not kept]",
            "short": "ok",
        }
    }


def test_query_parameters_and_bodies_that_are_not_json() -> None:
    kept = request_content(b"states=new&states=failed&limit=5&token=abc", b"{not json", 9)
    assert kept.kept == {
        "query": {"states": ["new", "failed"], "limit": "5", "token": REMOVED},
        "body": "[9 bytes, not JSON, not kept]",
    }
    assert request_content(b"", None, 70_000_000).kept == {"body": "[70000000 bytes, not kept]"}
    assert request_content(b"", b"", 0).kept is None


def test_text_postgresql_cannot_store_is_made_storable() -> None:
    body = b'{"name": "a\\u0000b\\ud800", "n": NaN, "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert request_content(b"", body, len(body)).kept == {
        "body": f"[{len(body)} bytes, not JSON, not kept]"
    }
    kept = request_content(b"", b'{"name": "a\\u0000b\\ud800", "n": NaN}', 1).kept
    assert kept == {"body": {"name": "a\\0b\\ud800", "n": "nan"}}
    json.dumps(kept).encode()  # storable as JSON text


def test_an_error_detail_never_quotes_a_removed_value() -> None:
    hidden = {"hunter2", "lg_abcdefghijklmnopqrstuvwxyz"}
    detail = "field 'password' = 'hunter2'; field 'token' = 'lg_abcdefghijklmn'"
    assert without(detail, hidden) == f"field 'password' = '{REMOVED}'; field 'token' = '{REMOVED}'"


@pytest.mark.parametrize(
    ("method", "status", "recorded"),
    [
        ("POST", 200, True),
        ("DELETE", 404, True),
        ("GET", 200, False),
        ("GET", 404, False),
        ("GET", 401, True),
        ("GET", 403, True),
        ("GET", 422, True),
        ("GET", 504, True),
    ],
)
def test_writes_always_reads_when_refused_or_failed(
    method: str, status: int, recorded: bool
) -> None:
    assert should_record(method, status) is recorded
