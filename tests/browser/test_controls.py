"""Two console controls driven in the browser: on an update's page (#/updates/<id>) an admin
pauses an approved update fleet-wide, resumes it and rolls it back on one group through the
page's dialogs (a refusal shown in the dialog, which stays open); on the policies page
(#/policies) an admin sets a group's maintenance windows, weekly across midnight and
monthly, sees them listed and clears them (a refusal shown under the windows field). A
viewer sees both read only. The API agrees with what the pages show."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.browser.support import Estate
from tests.browser.test_pages import open_page
from tests.browser.test_viewer import read_only

APPROVAL_ROWS = "#update-approvals tbody tr[data-id]"
WINDOW_ROWS = "#windows-list tbody tr[data-id]"
GROUP = "Servers"
"""The group the windows are set on (the estate's, services/cli/demo.py build_estate)."""
WEEKLY = "saturday 22:00-02:00"
MONTHLY = "second tuesday + 1 day, 22:00-02:00"


async def group_named(estate: Estate, name: str) -> dict[str, Any]:
    groups = (await estate.system.ok("GET", "/groups"))["groups"]
    group: dict[str, Any] = next(g for g in groups if g["name"] == name)
    return group


async def approvals_by_group(estate: Estate, update_id: str) -> dict[str, dict[str, Any]]:
    listed = await estate.system.ok("GET", f"/updates/{update_id}/approvals")
    return {row["group_name"]: row for row in listed["groups"]}


@asynccontextmanager
async def an_update_approved_on_servers_and_pilot(estate: Estate) -> AsyncIterator[str]:
    """A needed update nobody approved (the last of the list: the other browser tests take
    the first), approved through the API as a required install on Servers and on Pilot; its
    id. Its approvals are dropped afterwards (declined), so the fleet does not keep it."""
    listed = await estate.system.ok("GET", "/updates", params={"states": "new", "limit": 200})
    assert listed["updates"], "the estate has a needed update"
    update_id: str = listed["updates"][-1]["update_id"]
    await estate.system.ok(
        "POST",
        "/updates/approve",
        json={
            "updates": [update_id],
            "groups": [
                {"group": "Servers", "action": "required_install"},
                {"group": "Pilot", "action": "required_install"},
            ],
        },
    )
    try:
        yield update_id
    finally:
        await estate.system.ok("POST", "/updates/decline", json={"updates": [update_id]})


async def open_update(page: Page, update_id: str) -> Locator:
    """The update's page, once its approvals table lists Servers and Pilot; that table."""
    await open_page(page, f"#/updates/{update_id}", APPROVAL_ROWS)
    rows = page.locator(APPROVAL_ROWS)
    for name in ("Servers", "Pilot"):
        await expect(rows.filter(has_text=name)).to_have_count(1)
    return rows


def paused_cell(rows: Locator, group: str) -> Locator:
    return rows.filter(has=rows.page.locator("td[data-label=Group]", has_text=group)).locator(
        "td[data-label=Paused]"
    )


async def test_an_admin_pauses_resumes_and_rolls_back_an_update(
    admin_page: Page, estate: Estate
) -> None:
    page = admin_page
    async with an_update_approved_on_servers_and_pilot(estate) as update_id:
        rows = await open_update(page, update_id)
        for group in ("Servers", "Pilot"):
            await expect(paused_cell(rows, group)).to_have_text("")

        # Pause with no reason: the server refuses, the dialog stays open, the why under Reason.
        await page.locator("#pause-update").click()
        dialog = page.locator("dialog[open]")
        await expect(dialog.locator("#pause-reason")).to_be_focused()
        await dialog.locator("[data-action=pause-confirm]").click()
        reason = dialog.locator("#pause-reason")
        await expect(reason).to_have_attribute("aria-invalid", "true")
        await expect(reason).to_be_focused()
        await expect(dialog.locator("#pause-reason-error")).to_contain_text("reason")
        await expect(dialog.locator(".error-box[role=alert]")).to_be_hidden()
        shown = await approvals_by_group(estate, update_id)
        assert shown["Servers"]["effective"]["paused"] is None

        # With a reason, fleet-wide (no group): every approved group shows who and why.
        await dialog.locator("#pause-reason").fill("failing on the lab machines")
        await dialog.locator("[data-action=pause-confirm]").click()
        await expect(page.locator("dialog[open]")).to_have_count(0)
        await expect(page.locator("#notice")).to_contain_text("group approvals changed")
        shown = await approvals_by_group(estate, update_id)
        for group in ("Servers", "Pilot"):
            paused = shown[group]["effective"]["paused"]
            assert paused is not None, f"{group} is paused"
            assert paused["group_id"] is None  # fleet-wide
            assert paused["reason"] == "failing on the lab machines"
            assert paused["paused_by"].startswith("token:")
            await expect(paused_cell(rows, group)).to_have_text(
                re.compile(
                    rf"^paused fleet-wide by {re.escape(paused['paused_by'])}, "
                    r"\d{4}-\d\d-\d\d \d\d:\d\d UTC: failing on the lab machines$"
                )
            )

        # Resume lifts it (its reason is required too).
        await page.locator("#resume-update").click()
        dialog = page.locator("dialog[open]")
        await dialog.locator("#resume-reason").fill("fixed by the vendor")
        await dialog.locator("[data-action=resume-confirm]").click()
        await expect(page.locator("dialog[open]")).to_have_count(0)
        for group in ("Servers", "Pilot"):
            await expect(paused_cell(rows, group)).to_have_text("")
        shown = await approvals_by_group(estate, update_id)
        assert shown["Servers"]["effective"]["paused"] is None
        assert shown["Pilot"]["effective"]["paused"] is None

        # Roll back on a group that does not exist: refused, nothing changes.
        await page.locator("#rollback-update").click()
        dialog = page.locator("dialog[open]")
        await dialog.locator("#rollback-group").fill("No such group")
        await dialog.locator("#rollback-reason").fill("breaks the file servers")
        await dialog.locator("[data-action=rollback-confirm]").click()
        await expect(dialog.locator("#rollback-group")).to_have_attribute("aria-invalid", "true")
        await expect(dialog.locator("#rollback-group-error")).to_contain_text("No such group")
        shown = await approvals_by_group(estate, update_id)
        assert shown["Servers"]["explicit"]["action"] == "required_install"

        # On Servers: its approval becomes Uninstall, Pilot's stays a required install.
        await dialog.locator("#rollback-group").fill(GROUP)
        await dialog.locator("[data-action=rollback-confirm]").click()
        await expect(page.locator("dialog[open]")).to_have_count(0)
        servers = rows.filter(has=page.locator("td[data-label=Group]", has_text="Servers"))
        pilot = rows.filter(has=page.locator("td[data-label=Group]", has_text="Pilot"))
        await expect(servers.locator("td[data-label='Set here']")).to_have_text("Uninstall")
        await expect(servers.locator("td[data-label=Applies]")).to_have_text("Uninstall")
        await expect(pilot.locator("td[data-label='Set here']")).to_have_text("Required install")
        shown = await approvals_by_group(estate, update_id)
        assert shown["Servers"]["explicit"]["action"] == "uninstall"
        assert shown["Servers"]["explicit"]["approved_by"].startswith("rollback:token:")
        assert shown["Servers"]["effective"]["action"] == "uninstall"
        assert shown["Pilot"]["explicit"]["action"] == "required_install"


async def test_a_viewer_cannot_pause_resume_or_roll_back(viewer_page: Page, estate: Estate) -> None:
    listed = await estate.system.ok(
        "GET", "/updates", params={"states": "approved", "sort": "approved_groups", "limit": 1}
    )
    update_id = listed["updates"][0]["update_id"]
    page = viewer_page
    await open_page(page, f"#/updates/{update_id}", APPROVAL_ROWS)
    await read_only(page.locator("#pause-update, #resume-update, #rollback-update"), 3)


async def windows_listed(estate: Estate, group_id: str) -> list[str] | None:
    """The group's windows as text from the API, or None when it is not listed."""
    listed = await estate.system.ok("GET", "/maintenance-windows")
    for group in listed["groups"]:
        if group["group_id"] == group_id:
            texts: list[str] = group["texts"]
            return texts
    return None


@asynccontextmanager
async def windows_cleared_after(estate: Estate, group_id: str) -> AsyncIterator[None]:
    """Whatever happens, the group has no windows afterwards (they hold the fleet's installs
    for the other browser tests)."""
    try:
        yield
    finally:
        if await windows_listed(estate, group_id):
            await estate.system.ok("DELETE", f"/groups/{group_id}/maintenance-windows")


async def test_an_admin_sets_and_clears_a_groups_maintenance_windows(
    admin_page: Page, estate: Estate
) -> None:
    page = admin_page
    group = await group_named(estate, GROUP)
    assert await windows_listed(estate, group["group_id"]) is None
    async with windows_cleared_after(estate, group["group_id"]):
        await open_page(page, "#/policies", "#policies-list tbody tr[data-id]")
        section = page.locator("#maintenance-windows")
        await expect(section.locator("#windows-list td.empty")).to_contain_text(
            "No group has maintenance windows"
        )
        add = section.locator("#windows-set")
        await expect(add).to_be_enabled()
        await add.click()

        form = page.locator("dialog[open] #windows-form")
        await form.locator("[name=group]").select_option(group["group_id"])
        windows = form.locator("[name=windows]")
        # A window the scheduler does not understand: refused under the field.
        await windows.fill(f"{WEEKLY}\nsomeday 22:00-02:00")
        await form.locator("[data-action=save]").click()
        await expect(windows).to_have_attribute("aria-invalid", "true")
        await expect(form.locator(".field-error", has_text="someday")).to_be_visible()
        assert await windows_listed(estate, group["group_id"]) is None

        await windows.fill(f"{WEEKLY}\n{MONTHLY}")
        await form.locator("[data-action=save]").click()
        await expect(page.locator("dialog[open]")).to_have_count(0)
        row = section.locator(f'{WINDOW_ROWS}[data-id="{group["group_id"]}"]')
        await expect(row.locator("td[data-label=Group]")).to_have_text(GROUP)
        await expect(row.locator("li code")).to_have_text([WEEKLY, MONTHLY])
        listed = await estate.system.ok(
            "GET", "/maintenance-windows", params={"group": group["group_id"]}
        )
        (mine,) = listed["groups"]
        assert mine["texts"] == [WEEKLY, MONTHLY]
        weekly, monthly = mine["windows"]
        assert (weekly["weekday"], weekly["occurrence"]) == ("saturday", None)
        assert (weekly["start"], weekly["end"]) == ("22:00", "02:00")
        assert (monthly["weekday"], monthly["occurrence"]) == ("tuesday", "second")
        assert (monthly["offset_days"], monthly["start"], monthly["end"]) == (1, "22:00", "02:00")

        # Clear, asked first: the row goes, and the API lists the group no more.
        await row.locator("[data-action=clear-windows]").click()
        await page.locator("dialog[open] [data-action=confirm]").click()
        await expect(row).to_have_count(0)
        await expect(section.locator("#windows-list td.empty")).to_be_visible()
        assert await windows_listed(estate, group["group_id"]) is None


async def test_a_viewer_sees_the_maintenance_windows_read_only(
    viewer_page: Page, estate: Estate
) -> None:
    group = await group_named(estate, GROUP)
    async with windows_cleared_after(estate, group["group_id"]):
        await estate.system.ok(
            "PUT", f"/groups/{group['group_id']}/maintenance-windows", json={"windows": [WEEKLY]}
        )
        page = viewer_page
        await open_page(page, "#/policies", "#policies-list tbody tr[data-id]")
        row = page.locator(f'{WINDOW_ROWS}[data-id="{group["group_id"]}"]')
        await expect(row.locator("li code")).to_have_text([WEEKLY])
        await read_only(page.locator("#windows-set"))
        await read_only(row.locator("[data-action=edit-windows], [data-action=clear-windows]"), 2)
