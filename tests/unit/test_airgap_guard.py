"""The air-gap guard's rules (tests/support/airgap/sitecustomize.py): which destinations stay
on the machine, and that arming it refuses and records an outbound connect while disarming
puts the standard library back."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.airgap import sitecustomize as guard


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        (b"127.0.0.1", True),
        ("0.0.0.0", False),  # noqa: S104 - a destination here, not a bind
        ("10.0.0.1", False),
        ("192.0.2.10", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
        ("api.msrc.microsoft.com", False),
        ("localhost.example.com", False),
        (None, False),
    ],
)
def test_only_loopback_is_local(host: object, local: bool) -> None:
    assert guard.is_local(host) is local


@pytest.mark.parametrize(
    ("host", "numeric"),
    [("192.0.2.10", True), ("2001:db8::1", True), ("example.com", False), (None, False)],
)
def test_address_literals_need_no_lookup(host: object, numeric: bool) -> None:
    assert guard.is_numeric(host) is numeric


def test_armed_it_refuses_and_records_disarmed_it_restores(tmp_path: Path) -> None:
    log = tmp_path / "outbound.jsonl"
    original = socket.socket.connect, socket.getaddrinfo
    disarm = guard.install(str(log))
    try:
        with pytest.raises(guard.OutboundRefused, match=r"connect to \('192\.0\.2\.10', 80\)"):
            socket.create_connection(("192.0.2.10", 80), timeout=1)
        with pytest.raises(socket.gaierror, match=r"resolving 'example\.com' refused"):
            socket.getaddrinfo("example.com", 80)
        assert socket.getaddrinfo("127.0.0.1", 80)
    finally:
        disarm()
    assert (socket.socket.connect, socket.getaddrinfo) == original
    recorded = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["call"], r["address"]) for r in recorded] == [
        ("connect", "('192.0.2.10', 80)"),
        ("getaddrinfo", "'example.com'"),
    ]
    assert all(r["stack"] for r in recorded)
    assert len(Path(str(log) + ".armed").read_text().splitlines()) == 1
