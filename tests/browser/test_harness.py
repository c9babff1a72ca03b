"""The browser harness on its own, with no system behind it: Debian's Chromium under
Playwright loads a page this test serves on localhost, runs its script, takes input, and
support.shot() saves a 1280x800 PNG where LOCKGATE_SCREENS_DIR says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page

from tests.browser import support
from tests.support.processes import free_port

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness</title></head>
<body>
  <h1>Lockgate harness</h1>
  <form id="ask"><input id="name" autocomplete="off"><button>Greet</button></form>
  <p id="out"></p>
  <script type="module">
    document.querySelector("#ask").addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await fetch("/greet?name=" + encodeURIComponent(
        document.querySelector("#name").value));
      document.querySelector("#out").textContent = await answer.text();
    });
  </script>
</body></html>
"""


@pytest_asyncio.fixture(loop_scope="package")
async def site() -> AsyncIterator[str]:
    """A page and a slow text endpoint on 127.0.0.1, served from the test's event loop."""

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def greet(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)  # slower than a click: shot() must wait for it
        return web.Response(text=f"Hello, {request.query['name']}!")

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/greet", greet)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_debian_chromium_runs_a_local_page(
    browser: Browser, blank_page: Page, site: str
) -> None:
    assert browser.browser_type.name == "chromium"
    assert browser.version.split(".")[0].isdigit()
    await blank_page.goto(site + "/")
    assert await blank_page.title() == "Harness"
    await blank_page.locator("#name").fill("Ada")
    await blank_page.get_by_role("button", name="Greet").click()
    await blank_page.locator("#out", has_text="Hello, Ada!").wait_for()
    assert blank_page.viewport_size == support.VIEWPORT


async def test_shot_saves_a_1280x800_png_where_the_environment_says(
    blank_page: Page, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await blank_page.goto(site + "/")
    await blank_page.set_viewport_size({"width": 800, "height": 600})
    monkeypatch.setenv("LOCKGATE_SCREENS_DIR", str(tmp_path / "screens"))
    path = await support.shot(blank_page, "harness")
    assert path == tmp_path / "screens" / "harness.png"
    assert support.png_size(path) == (support.WIDTH, support.HEIGHT)
    assert path.stat().st_size > 1000, "a page with text, not an empty picture"

    await blank_page.locator("#name").fill("Grace")
    await blank_page.get_by_role("button", name="Greet").click()
    await support.shot(blank_page, "harness")
    assert await blank_page.locator("#out").text_content() == "Hello, Grace!", (
        "shot() waits for the page's requests to end"
    )

    monkeypatch.delenv("LOCKGATE_SCREENS_DIR")
    default = await support.shot(blank_page, "harness")
    assert default.parent != path.parent, "pytest's tmp folder when the environment is silent"
    assert support.png_size(default) == (support.WIDTH, support.HEIGHT)
    with pytest.raises(ValueError, match="screen name"):
        await support.shot(blank_page, "../escape")
