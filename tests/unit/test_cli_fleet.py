"""What `lockgate computers list` and `lockgate report overview` ask for and print."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.contracts import reporting as r
from libs.contracts.reporting import NOT_ENROLLED
from services.cli.fleet_commands import next_command, query_of, table
from services.cli.main import parser
from services.cli.report_commands import overview_text

NOW = datetime(2026, 2, 11, 20, 0, tzinfo=UTC)


def counts(**given: int) -> r.StateCounts:
    fields = (
        "installed",
        "needed",
        "failed",
        "installed_pending_restart",
        "not_applicable",
        "no_status",
        "not_reporting",
    )
    values = {name: given.get(name, 0) for name in fields}
    applies = sum(values[n] for n in ("installed", "needed", "failed", "installed_pending_restart"))
    return r.StateCounts(applies_to=applies, **values)


def computer(computer_id: str, *, silent: bool = False, failed: int = 0) -> r.FleetComputer:
    return r.FleetComputer(
        computer_id=computer_id,
        hostname=f"{computer_id}.corp.example",
        groups=["Pilot", "Workstations"],
        operating_system="Windows 11",
        os_version="10.0.26100",
        architecture="x64",
        agent_version="1.0.0",
        timezone="Europe/Paris",
        policy="Workstations",
        last_contact_at=NOW,
        not_reporting=silent,
        compliance=r.FleetCompliance(
            installed=3, needed=1, failed=failed, installed_pending_restart=0, no_status=2
        ),
    )


def test_the_command_line_becomes_the_fleet_query() -> None:
    args = parser().parse_args(
        [
            "computers",
            "list",
            "--filter",
            "not-reporting",
            "--filter",
            "past-deadline",
            "--group",
            "Pilot",
            "--search",
            "pc-",
            "--sort",
            "last-contact",
            "--limit",
            "20",
        ]
    )
    query = query_of(args)
    assert (query.not_reporting, query.failed, query.restart_pending, query.past_deadline) == (
        True,
        False,
        False,
        True,
    )
    assert (query.group, query.search, query.sort, query.limit, query.cursor) == (
        "Pilot",
        "pc-",
        "last_contact",
        20,
        None,
    )
    # The next page's hint repeats the filters and adds the cursor.
    assert next_command(args, "abc") == (
        "lockgate computers list --filter not-reporting --filter past-deadline --group Pilot "
        "--search pc- --sort last-contact --limit 20 --cursor abc"
    )


def test_the_table_flags_computers_not_reporting_and_says_how_to_go_on() -> None:
    args = parser().parse_args(["computers", "list", "--filter", "failed"])
    page = r.ComputerList(
        computers=[computer("pc-1", failed=2), computer("pc-2", silent=True)],
        managed=40,
        next_cursor="next-one",
    )
    text = table(page, args).splitlines()
    assert text[0].startswith("computer")
    assert "2026-02-11 20:00 " in text[1]
    assert "2026-02-11 20:00!" in text[2]
    assert text[1].split()[-5:] == ["3", "1", "2", "0", "2"]
    assert "2 shown of 40 managed; ! = not reporting (1 here)" in text
    assert text[-1] == "next page: lockgate computers list --filter failed --cursor next-one"


def test_an_empty_page_and_an_empty_fleet_say_so() -> None:
    args = parser().parse_args(["computers", "list"])
    assert table(r.ComputerList(computers=[], managed=5, next_cursor=None), args) == (
        "no computer matches (of 5 managed)"
    )
    assert table(r.ComputerList(computers=[], managed=0, next_cursor=None), args) == NOT_ENROLLED


def test_a_later_page_without_the_managed_count_says_only_what_it_shows() -> None:
    """The managed count comes with the first page only: later pages must not print None."""
    args = parser().parse_args(["computers", "list"])
    later = r.ComputerList(computers=[computer("pc-3")], managed=None, next_cursor=None)
    assert "1 shown" in table(later, args).splitlines()[-1]
    assert "None" not in table(later, args)
    empty = r.ComputerList(computers=[], managed=None, next_cursor=None)
    assert table(empty, args) == "no computer matches on this page"


def test_the_overview_shows_every_number_and_until_a_computer_checks_in_how_to_enrol() -> None:
    empty = r.SummaryReport(new_updates_to_approve=False, computers=0, updates=[], total=0)
    text = overview_text(empty)
    assert "No computer is managed yet" in text
    assert "lockgate broker agents" in text
    assert "docs/agent-protocol.md" in text

    update = r.UpdateCompliance(
        update_id="u1",
        kb="5073455",
        title="2026-02 Security Update",
        classification="Security Updates",
        superseded=False,
        approved=True,
        counts=counts(installed=5, needed=2, failed=1, no_status=3, not_reporting=4),
    )
    report = r.SummaryReport(
        new_updates_to_approve=True,
        computers=20,
        computers_not_reporting=4,
        totals=update.counts,
        updates=[update],
        total=1,
    )
    head, totals, line = overview_text(report).splitlines()
    assert head == "20 computers, 4 not reporting; new updates to approve: yes"
    for part in ("5 installed", "2 needed", "1 failed", "3 no status", "4 not reporting"):
        assert part in totals
        assert part in line
