"""What `make run` shows after the system is up: a small estate and a simulated fleet.

Groups (Workstations, its child Pilot, Servers), a policy, two auto-approval rules (Windows
security updates for Workstations within a week; for Pilot as soon as possible), 1,000
simulated computers spread over the groups, and a compliance summary every 30 seconds
that moves as Pilot installs. A few computers go silent after three minutes (not reporting
once LOCKGATE_NOT_REPORTING_DAYS pass: `make run` sets about four minutes for the demo) and
a few never report a status (no status), so they show apart from failing ones. Everything
goes through the console API, like an operator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from libs.contracts import approval as a
from libs.contracts import policies as p
from libs.contracts import reporting as r
from libs.settings import Settings
from services.cli.common import ApiClient, ApiFailure, Output, with_api
from services.cli.sim_commands import run_fleet
from services.simulator.fleet import Options

FLEET = Options(
    computers=1000,
    prefix="demo",
    offline_rate=0.02,
    failure_rate=0.03,
    silent_rate=0.03,
    silent_after=timedelta(minutes=3),
    mute_rate=0.01,
    checkin_every=timedelta(minutes=1),
)
"""Computers check in every minute (not every 8 hours), and `make run` sets
LOCKGATE_NOT_REPORTING_DAYS to about 4 minutes for the demo: silent computers show as not
reporting within minutes, apart from failing ones."""
SHARES = (("Pilot", 100), ("Workstations", 700), ("Servers", 200))


async def _tolerate_existing(call: Awaitable[object]) -> None:
    """A second `make run` finds the estate already there: that is fine."""
    try:
        await call
    except ApiFailure as error:
        if "already exists" not in str(error) and "409" not in str(error):
            raise


async def build_estate(client: ApiClient) -> None:
    await _tolerate_existing(client.call(a.CREATE_GROUP, a.CreateGroup(name="Workstations")))
    await _tolerate_existing(
        client.call(a.CREATE_GROUP, a.CreateGroup(name="Pilot", parent="Workstations"))
    )
    await _tolerate_existing(client.call(a.CREATE_GROUP, a.CreateGroup(name="Servers")))
    await _tolerate_existing(
        client.call(
            p.CREATE_POLICY,
            p.CreatePolicy(
                name="Workstations", settings=p.PolicySettings(restart_delay_minutes=10)
            ),
        )
    )
    await client.call(p.ASSIGN_POLICY, p.AssignPolicy(policy="Workstations", group="Workstations"))
    for name, group, deadline in (
        ("Windows security for workstations", "Workstations", "one_week"),
        ("Pilot first", "Pilot", "as_soon_as_possible"),
    ):
        await _tolerate_existing(
            client.call(
                a.CREATE_RULE,
                a.CreateRule(
                    rule=a.RuleSpec(
                        name=name,
                        products=["Windows"],
                        classifications=["Security Updates", "Critical Updates"],
                        groups=[group],
                        deadline=deadline,
                    )
                ),
            )
        )
        await client.call(a.RUN_RULE, a.RunRule(rule=name))


async def place_computers(client: ApiClient, computers: list[str]) -> None:
    """Wait for the fleet to register, then spread it over the groups."""
    ends = time.monotonic() + 120
    while time.monotonic() < ends:
        tree = await client.call(a.LIST_GROUPS, a.ListGroups())
        if tree.groups[0].computers >= len(computers):
            break
        await asyncio.sleep(2)
    start = 0
    for group, count in SHARES:
        await client.call(
            a.CHANGE_MEMBERSHIP,
            a.ChangeMembership(computers=computers[start : start + count], group=group),
        )
        start += count


def _summary(report: r.SummaryReport) -> str:
    lines = [
        f"compliance: {report.computers} computers, {report.computers_not_reporting} not "
        "reporting; new updates to approve: " + ("yes" if report.new_updates_to_approve else "no")
    ]
    for update in report.updates[:5]:
        c = update.counts
        lines.append(
            f"  KB{update.kb or '-':<8} {c.installed:>4} installed {c.installed_pending_restart:>4}"
            f" pending restart {c.needed:>4} needed {c.failed:>3} failed {c.no_status:>3} no status"
            f" {c.not_reporting:>3} not reporting"
        )
    return "\n".join(lines)


async def show_fleet(settings: Settings, out: Output) -> int:
    """Estate, fleet, then a moving summary until interrupted (Ctrl-C)."""
    computers = [f"{FLEET.prefix}-{n:05d}" for n in range(FLEET.computers)]
    await with_api(settings, _as_int(build_estate))
    fleet = asyncio.create_task(run_fleet(settings, out, FLEET, duration=0, every=60))
    await with_api(settings, _as_int(lambda client: place_computers(client, computers)))
    print(
        "\nLockgate is running.\n"
        f"  console API  {settings.url}/api/v1/docs\n"
        "  admin token  var/dev-token   (export LOCKGATE_TOKEN=$(cat var/dev-token))\n"
        "  try          lockgate report overview | lockgate groups show Pilot |"
        " lockgate updates list --filter approved | lockgate computers plan demo-00000\n"
        "               lockgate computers list --filter not-reporting |"
        " lockgate computers list --filter failed --sort failed\n",
        flush=True,
    )

    async def summarize(client: ApiClient) -> int:
        while not fleet.done():
            report = await client.call(r.SUMMARY, r.Summary(page=r.Page(limit=5)))
            print(_summary(report), flush=True)
            await asyncio.sleep(30)
        return 0

    try:
        return await with_api(settings, summarize)
    finally:
        fleet.cancel()


def _as_int(
    work: Callable[[ApiClient], Awaitable[None]],
) -> Callable[[ApiClient], Awaitable[int]]:
    """Adapts a client coroutine to with_api (which wants an exit code)."""

    async def run(client: ApiClient) -> int:
        await work(client)
        return 0

    return run
