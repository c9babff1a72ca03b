"""The health server a process serves before its API: health answers, the API says 503."""

from __future__ import annotations

import httpx

from libs.observability.http import RETRY_AFTER_SECONDS, HealthServer


async def not_ready() -> dict[str, bool]:
    return {"database": False, "broker": True}


async def test_a_starting_process_answers_its_api_paths_with_503_and_retry_after() -> None:
    server = HealthServer(not_ready, host="127.0.0.1", port=0, starting=True)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": False, "broker": True}
            api = await http.post("/api/v1/groups", json={"name": "x"})
            assert api.status_code == 503
            assert api.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert api.headers["content-type"].startswith("application/problem+json")
            assert "starting" in api.json()["detail"]
    finally:
        await server.stop()


async def test_a_running_service_has_no_catch_all() -> None:
    server = HealthServer(not_ready, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            assert (await http.get("/api/v1/groups")).status_code == 404
    finally:
        await server.stop()
