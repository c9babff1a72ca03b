"""Schemathesis hooks for the console's fuzz runs (loaded by SCHEMATHESIS_HOOKS).

- LOCKGATE_FUZZ_KEEP_TOKENS: token ids a generated revoke must not hit (the run's own token
  and the one the test uses afterwards); such a revoke is sent for a random id instead.
- LOCKGATE_FUZZ_READ_ONLY=1: the run's token is a viewer's, so the check
  `viewer_never_writes` fails any 2xx answer to a request that is not a read (nor
  POST /api/v1/validate, which only judges a body and changes nothing).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis

KEEP = frozenset(t for t in os.environ.get("LOCKGATE_FUZZ_KEEP_TOKENS", "").split(",") if t)
READ_ONLY = os.environ.get("LOCKGATE_FUZZ_READ_ONLY") == "1"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
CHANGES_NOTHING = frozenset({("POST", "/api/v1/validate")})
"""Operations that are not reads by method but change nothing (viewers may call them)."""


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    """Never revoke a token the run or the test still needs."""
    del context, kwargs
    parameters = case.path_parameters
    if case.method.upper() == "DELETE" and parameters and parameters.get("token_id") in KEEP:
        parameters["token_id"] = str(uuid.uuid4())


@schemathesis.check
def viewer_never_writes(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A viewer's token never changes anything: no 2xx to a write."""
    del ctx
    method = case.method.upper()
    if (
        READ_ONLY
        and method not in READS
        and (method, case.path) not in CHANGES_NOTHING
        and 200 <= response.status_code < 300
    ):
        raise AssertionError(
            f"a viewer token got {response.status_code} for {case.method} {case.formatted_path}"
        )
    return None
