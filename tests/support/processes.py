"""Service processes for tests: start, wait until ready, SIGTERM or kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.infra import Infra

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def readyz(port: int) -> int:
    """HTTP status of /readyz, or 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


class ServiceRunner:
    """`python -m services.<name>` as a child process with this session's settings."""

    def __init__(self, service: str, infra: Infra, log_dir: Path, **env: str) -> None:
        self.service = service
        self.port = free_port()
        port_setting = "CONSOLE_PORT" if service == "console" else f"{service.upper()}_HTTP_PORT"
        self.env = infra.env(**{f"LOCKGATE_{port_setting}": str(self.port)}, **env)
        self.log_path = log_dir / f"{service}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceRunner:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.service}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.service} exited: {self.log()}")
            if await asyncio.to_thread(readyz, self.port) == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.service} not ready in {timeout} s: {self.log()}")

    def kill(self) -> None:
        """kill -9: no cleanup at all, as when a machine dies."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(20)
            if self.process.poll() is None:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""
