"""The Rollouts page (#/rollouts): an operator starts a rollout over two of the estate's
groups through its form (a refusal shown under the field that caused it), sees it running
with its first ring started, and gives go, asked first: the second ring starts and the
rollout completes."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.support import Estate
from tests.browser.test_pages import open_page

ROWS = "#rollouts-list tbody tr[data-id]"


async def test_an_operator_starts_a_rollout_and_gives_go(admin_page: Page, estate: Estate) -> None:
    listed = await estate.system.ok("GET", "/updates", params={"states": "new", "limit": 1})
    update = listed["updates"][0]
    page = admin_page
    await open_page(page, "#/rollouts", "#rollouts-list table")
    await page.click("#rollout-new")
    form = page.locator("#rollout-form")
    await form.locator("[name=update]").fill(update["update_id"])
    await form.locator("[name=rings]").fill("Pilot")
    await form.locator("[name='gate.delay_hours']").fill("2000")  # the estate's clock is fast
    await form.locator("[data-action=start]").click()
    await expect(form.locator("[name=rings]")).to_have_attribute("aria-invalid", "true")

    await form.locator("[name=rings]").fill("Pilot\nServers")
    await form.locator("[data-action=start]").click()
    await expect(form).to_be_hidden()
    row = page.locator(ROWS).filter(has_text=update["title"]).first
    await expect(row).to_contain_text("running")
    await expect(row.locator(".chip.good")).to_have_text(["1. Pilot"])

    await row.locator("[data-action=go]").click()
    await page.locator("dialog [data-action=confirm]").click()
    await expect(row).to_contain_text("completed")
    await expect(row.locator(".chip.good")).to_have_text(["completed", "1. Pilot", "2. Servers"])
    shown = await estate.system.ok("GET", f"/rollouts/{update['update_id']}")
    assert [ring["started_by"] for ring in shown["rings"]] == ["start", f"go:{shown['started_by']}"]
