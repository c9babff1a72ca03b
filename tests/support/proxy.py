"""A TCP proxy the tests can cut, to show clients survive a broker connection loss; with
fallbacks it also stands in for the load balancer in front of a broker cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection at once.

    With `fallbacks`, a new connection goes to the first target that accepts it, in order,
    as a TCP load balancer in front of a cluster does: when a node stops, its clients'
    connections close and their reconnections reach the next node."""

    def __init__(
        self, target_host: str, target_port: int, *, fallbacks: Sequence[tuple[str, int]] = ()
    ) -> None:
        self._targets = [(target_host, target_port), *fallbacks]
        self.forwarded: Counter[int] = Counter()
        """Connections forwarded so far, by target port."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.cuts = 0

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for host, port in self._targets:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.forwarded[port] += 1
            break
        else:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    async def cut(self, down_for: float = 0.0) -> None:
        """Close every proxied connection; refuse new ones for `down_for` seconds."""
        self.cuts += 1
        if down_for and self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if down_for:
            await asyncio.sleep(down_for)
            await self.start(self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
