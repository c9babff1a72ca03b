"""A viewer cannot write: every write control of the pages that change something is
disabled and says why, and the server refuses a viewer's write anyway (403), as it refuses
any cookie-authenticated write without the session's CSRF token (docs/SECURITY.md)."""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.browser.support import Estate

READ_ONLY = "Read only: your token is a viewer"
"""The title every disabled write control carries for a viewer (js/ui.js READ_ONLY)."""

POST_FROM_PAGE = """async ({ path, body, csrf }) => {
    const session = await (await fetch("/api/v1/session")).json();
    const headers = { "Content-Type": "application/json" };
    if (csrf === "session") headers["X-CSRF-Token"] = session.csrf_token;
    else if (csrf) headers["X-CSRF-Token"] = csrf;
    const answer = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: answer.status, text: await answer.text(), role: session.role };
}"""


async def post_from_page(page: Page, path: str, body: Any, csrf: str | None) -> dict[str, Any]:
    """A POST the page's own script sends with its session cookie: with the session's CSRF
    token (`csrf="session"`), another token, or none. Status, problem and the session's role."""
    answer: dict[str, Any] = await page.evaluate(
        POST_FROM_PAGE, {"path": path, "body": body, "csrf": csrf}
    )
    answer["problem"] = json.loads(answer["text"]) if answer["text"] else {}
    return answer


async def read_only(controls: Locator, at_least: int = 1) -> None:
    """Each control is disabled and titled as read only for viewers."""
    count = await controls.count()
    assert count >= at_least, f"{controls}: {count} found, expected at least {at_least}"
    for index in range(count):
        control = controls.nth(index)
        await expect(control).to_be_disabled()
        await expect(control).to_have_attribute("title", READ_ONLY)


async def a_needed_update(estate: Estate) -> dict[str, Any]:
    listed = await estate.system.ok("GET", "/updates", params={"states": "new", "limit": 1})
    assert listed["updates"], "the estate has a needed update"
    update: dict[str, Any] = listed["updates"][0]
    return update


async def still_needed(estate: Estate, update: dict[str, Any]) -> bool:
    listed = await estate.system.ok(
        "GET", "/updates", params={"states": "new", "search": update["title"], "limit": 50}
    )
    return any(row["update_id"] == update["update_id"] for row in listed["updates"])


async def test_a_viewers_write_controls_are_disabled(viewer_page: Page, estate: Estate) -> None:
    page = viewer_page
    await expect(page.locator("#who .role")).to_have_text("viewer")

    # All updates: the toolbar stays disabled even with a selection.
    await page.goto("/#/updates")
    rows = page.locator("#update-results tbody tr[data-id]")
    await expect(rows.first).to_be_visible()
    await rows.first.locator("td.check input").check()
    await expect(page.locator("#selection-count")).to_have_text("1 selected")
    await read_only(page.locator("#approve-selected, #decline-selected, #edit-selected"), 3)
    await read_only(page.locator("#delete-selected, button#upload-link"), 2)
    update_id = await rows.first.get_attribute("data-id")

    # One update's page.
    await page.goto(f"/#/updates/{update_id}")
    await expect(page.locator("#update-properties")).to_be_visible()
    await read_only(page.locator("#approve-update, #decline-update, #expire-update"), 3)

    # Rules: new, and each rule's preview, run, edit and delete.
    await page.goto("/#/rules")
    await expect(page.locator("#rules-list tbody tr[data-id]").first).to_be_visible()
    await read_only(page.locator("#rule-new"))
    for action in ("preview", "run", "edit", "delete"):
        await read_only(page.locator(f"#rules-list [data-action={action}]"))

    # Groups: a group below All computers, its tasks and adding computers.
    groups = (await estate.system.ok("GET", "/groups"))["groups"]
    child = next(g for g in groups if g["parent_id"])
    await page.goto(f"/#/groups?group={child['name']}")
    await expect(page.locator("#group-detail h2").first).to_have_text(child["name"])
    await read_only(page.locator("#group-new"))
    for action in ("subgroup", "rename", "move", "delete"):
        await read_only(page.locator(f"#group-detail [data-action={action}]"))
    await read_only(page.locator("#group-add [name=computers], #group-add [data-action=add]"), 2)
    await expect(page.locator("#group-members tbody tr[data-id]").first).to_be_visible()
    await read_only(page.locator("#group-members [data-action=remove]"))

    # Policies: new, and each policy's edit, assign, delete and unassign.
    await page.goto("/#/policies")
    await expect(page.locator("#policies-list tbody tr[data-id]").first).to_be_visible()
    await read_only(page.locator("#policy-new"))
    for action in ("edit", "assign", "delete", "unassign"):
        await read_only(page.locator(f"#policies-list [data-action={action}]"))

    # Upload: choosing files and starting the upload.
    await page.goto("/#/upload")
    await expect(page.locator("#step-files")).to_be_visible()
    await read_only(page.locator("#upload-file, #upload-extra, #upload-folder"), 3)
    await read_only(page.locator("#step-files [data-action=next]"))

    # Catalog: the settings and the MSRC import.
    await page.goto("/#/catalog")
    await expect(page.locator("#catalog-settings")).to_be_visible()
    await read_only(page.locator("#settings-save, #msrc-file, #msrc-import"), 3)


async def test_the_server_refuses_a_viewers_write(viewer_page: Page, estate: Estate) -> None:
    update = await a_needed_update(estate)
    answer = await post_from_page(
        viewer_page, "/api/v1/updates/decline", {"updates": [update["update_id"]]}, "session"
    )
    assert answer["role"] == "viewer"
    assert answer["status"] == 403, answer
    assert "read only" in answer["problem"]["detail"], answer
    assert await still_needed(estate, update), "the viewer's decline changed nothing"


async def test_a_write_without_the_csrf_token_is_refused(admin_page: Page, estate: Estate) -> None:
    update = await a_needed_update(estate)
    decline = {"updates": [update["update_id"]]}
    for csrf in (None, "not-this-sessions-token"):
        answer = await post_from_page(admin_page, "/api/v1/updates/decline", decline, csrf)
        assert answer["role"] == "admin"
        assert answer["status"] == 403, (csrf, answer)
        assert "CSRF" in answer["problem"]["detail"], answer
    assert await still_needed(estate, update), "the refused declines changed nothing"

    # The same session's token gets a write through: the refusals above were the CSRF check.
    check = {"method": "POST", "path": "/updates/decline", "body": decline, "partial": False}
    answer = await post_from_page(admin_page, "/api/v1/validate", check, "session")
    assert answer["status"] in (200, 204), answer
