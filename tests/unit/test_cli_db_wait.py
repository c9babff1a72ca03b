"""`lockgate db create` / `migrate` wait a while for a database still starting, then say so."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.processes import ROOT, free_port


def test_db_create_waits_then_names_the_database_and_the_option() -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "LOCKGATE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "--json", "db", "create", "--wait", "1.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == "", "waiting is told on stderr; stdout keeps only a result"
    assert "dependencies.waiting" in done.stderr
    assert f"127.0.0.1:{port}/x did not answer within 1.5 s (--wait)" in done.stderr
