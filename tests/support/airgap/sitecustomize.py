"""Refuse every outbound network connection of this Python process, and record each attempt.

Python imports `sitecustomize` at start-up from its path, so with this folder first on
PYTHONPATH every process a test starts (each service, the console, the CLI) is guarded from
its first line. Set AIRGAP_GUARD_LOG to a file: each refused attempt is appended to it as a
JSON line (process, call, address, where in the code), and the process's arming to
`<file>.armed`, so a test can tell that the guard was really on in every process.

Allowed: loopback addresses (127.0.0.0/8, ::1, and IPv4-mapped 127.x), the name `localhost`,
Unix sockets, and resolving numeric addresses (which sends nothing). Refused, before any
packet leaves: connect/connect_ex/sendto to any other address (ConnectionRefusedError), and
resolving any other name or looking up any other address (socket.gaierror / socket.herror,
as a network without DNS answers).

It stands alone (the standard library only): it runs before the project is on sys.path.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

LOG_ENV = "AIRGAP_GUARD_LOG"
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

_lock = threading.Lock()
_saved: dict[str, Any] = {}


class OutboundRefused(ConnectionRefusedError):
    """An outbound connection the air-gap guard refused."""


def is_local(host: object) -> bool:
    """Whether a destination host stays on this machine."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_numeric(host: object) -> bool:
    """Whether a host is an address literal (resolving it sends nothing)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _record(log: str, call: str, address: object) -> None:
    entry = {
        "pid": os.getpid(),
        "argv": list(getattr(sys, "orig_argv", sys.argv)),
        "call": call,
        "address": repr(address),
        "stack": traceback.format_stack(limit=12)[:-2],
    }
    with _lock, open(log, "a", encoding="utf-8") as out:  # noqa: PTH123 - stdlib only, tiny
        out.write(json.dumps(entry) + "\n")


def _guard_address(log: str, call: str, address: object) -> None:
    """Refuse (and record) an inet destination that is not loopback."""
    if (
        isinstance(address, tuple)
        and address
        and isinstance(address[0], str | bytes)
        and not is_local(address[0])
    ):
        _record(log, call, address)
        raise OutboundRefused(f"air-gap guard: outbound {call} to {address!r} refused")


def install(log: str) -> Callable[[], None]:
    """Arm the guard in this process (once); a function that disarms it."""
    if _saved:
        return uninstall
    cls: Any = socket.socket
    connect, connect_ex, sendto = cls.connect, cls.connect_ex, cls.sendto
    getaddrinfo, by_name, by_name_ex, by_addr = (
        socket.getaddrinfo,
        socket.gethostbyname,
        socket.gethostbyname_ex,
        socket.gethostbyaddr,
    )

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _guard_address(log, "connect", address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _guard_address(log, "connect_ex", address)
        result: int = connect_ex(self, address)
        return result

    def guarded_sendto(self: socket.socket, data: Any, *rest: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and rest:
            _guard_address(log, "sendto", rest[-1])
        result: int = sendto(self, data, *rest)
        return result

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "", b"") and not is_local(host) and not is_numeric(host):
            _record(log, "getaddrinfo", host)
            raise socket.gaierror(socket.EAI_FAIL, f"air-gap guard: resolving {host!r} refused")
        return getaddrinfo(host, *args, **kwargs)

    def guarded_by_name(host: str) -> str:
        if not is_local(host) and not is_numeric(host):
            _record(log, "gethostbyname", host)
            raise socket.gaierror(socket.EAI_FAIL, f"air-gap guard: resolving {host!r} refused")
        result: str = by_name(host)
        return result

    def guarded_by_name_ex(host: str) -> Any:
        if not is_local(host) and not is_numeric(host):
            _record(log, "gethostbyname_ex", host)
            raise socket.gaierror(socket.EAI_FAIL, f"air-gap guard: resolving {host!r} refused")
        return by_name_ex(host)

    def guarded_by_addr(host: str) -> Any:
        if not is_local(host):  # a reverse lookup asks DNS even for an address
            _record(log, "gethostbyaddr", host)
            raise socket.herror(1, f"air-gap guard: looking up {host!r} refused")
        return by_addr(host)

    _saved.update(
        connect=connect,
        connect_ex=connect_ex,
        sendto=sendto,
        getaddrinfo=getaddrinfo,
        gethostbyname=by_name,
        gethostbyname_ex=by_name_ex,
        gethostbyaddr=by_addr,
    )
    cls.connect, cls.connect_ex, cls.sendto = guarded_connect, guarded_connect_ex, guarded_sendto
    module: Any = socket
    module.getaddrinfo = guarded_getaddrinfo
    module.gethostbyname = guarded_by_name
    module.gethostbyname_ex = guarded_by_name_ex
    module.gethostbyaddr = guarded_by_addr
    with _lock, open(log + ".armed", "a", encoding="utf-8") as out:  # noqa: PTH123
        out.write(json.dumps({"pid": os.getpid(), "argv": list(sys.orig_argv)}) + "\n")
    return uninstall


def uninstall() -> None:
    """Disarm the guard (what install() replaced is put back)."""
    if not _saved:
        return
    cls: Any = socket.socket
    cls.connect, cls.connect_ex, cls.sendto = (
        _saved["connect"],
        _saved["connect_ex"],
        _saved["sendto"],
    )
    module: Any = socket
    module.getaddrinfo = _saved["getaddrinfo"]
    module.gethostbyname = _saved["gethostbyname"]
    module.gethostbyname_ex = _saved["gethostbyname_ex"]
    module.gethostbyaddr = _saved["gethostbyaddr"]
    _saved.clear()


if os.environ.get(LOG_ENV):
    install(os.environ[LOG_ENV])
