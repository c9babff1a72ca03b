"""Maintenance windows per computer group (docs/product.md section 1, "Maintenance windows").

A window is weekly ("tuesday 22:00-02:00") or monthly by weekday occurrence with an offset
("second tuesday + 1 day, 22:00-02:00"), in the computer's local time; an end not after
the start means the window ends the next day. The text form is accepted wherever a window
is (API, CLI, messages) and is how windows are shown.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, Self, get_args

from pydantic import AwareDatetime, Field, model_validator

from libs.contracts.policies import TIME_OF_DAY, WEEKDAYS, Weekday
from libs.contracts.spec import Contract, command, event

Occurrence = Literal["first", "second", "third", "fourth", "last"]
OCCURRENCES: tuple[Occurrence, ...] = get_args(Occurrence)
MAX_OFFSET_DAYS = 14
MAX_WINDOWS = 20
"""Windows one group may have."""

_TEXT = re.compile(
    r"^\s*(?:(?P<occurrence>[a-z]+)\s+)?(?P<weekday>[a-z]+)"
    r"(?:\s*\+\s*(?P<offset>\d+)\s*days?)?\s*,?\s*"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$",
    re.IGNORECASE,
)
FORMS = (
    "'<weekday> HH:MM-HH:MM' (weekly, e.g. 'tuesday 22:00-02:00') or "
    "'<first|second|third|fourth|last> <weekday> [+ N days], HH:MM-HH:MM' (monthly, e.g. "
    "'second tuesday + 1 day, 22:00-02:00')"
)


def parse_window(text: str) -> dict[str, Any]:
    """The fields of a window written as text; ValueError naming what is wrong."""
    match = _TEXT.match(text)
    if match is None:
        raise ValueError(f"window {text!r} is not understood; write {FORMS}")
    occurrence, weekday = match["occurrence"], match["weekday"].lower()
    if occurrence is not None and occurrence.lower() not in OCCURRENCES:
        raise ValueError(
            f"window {text!r}: {occurrence!r} is not an occurrence; "
            f"allowed: {', '.join(OCCURRENCES)}"
        )
    if weekday not in WEEKDAYS:
        raise ValueError(
            f"window {text!r}: {match['weekday']!r} is not a weekday; "
            f"allowed: {', '.join(WEEKDAYS)}"
        )
    fields: dict[str, Any] = {
        "weekday": weekday,
        "start": match["start"].zfill(5),
        "end": match["end"].zfill(5),
    }
    if occurrence is not None:
        fields["occurrence"] = occurrence.lower()
    if match["offset"] is not None:
        fields["offset_days"] = int(match["offset"])
    return fields


class MaintenanceWindow(Contract):
    """One recurring window in the computer's local time; also accepted as text, e.g.
    `tuesday 22:00-02:00` or `second tuesday + 1 day, 22:00-02:00`."""

    weekday: Weekday = Field(
        description="Weekly: the day the window opens. Monthly: the weekday counted "
        "(`second tuesday`)."
    )
    occurrence: Occurrence | None = Field(
        default=None,
        description="null: every week; else monthly, on this occurrence of `weekday` in the "
        "month (`first` ... `fourth`, `last`).",
    )
    offset_days: int = Field(
        default=0,
        ge=0,
        le=MAX_OFFSET_DAYS,
        description=f"Monthly only: days after that weekday the window opens (0-"
        f"{MAX_OFFSET_DAYS}; `second tuesday + 1 day` is the Wednesday after).",
    )
    start: str = Field(pattern=TIME_OF_DAY, description="Opens at, local time HH:MM.")
    end: str = Field(
        pattern=TIME_OF_DAY,
        description="Closes at, local time HH:MM; not after `start`: the next day (the "
        "window crosses midnight).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        return parse_window(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.start == self.end:
            raise ValueError(
                f"window {self.text()!r}: start and end are both {self.start}; a window needs "
                "a length (an end before the start crosses midnight)"
            )
        if self.occurrence is None and self.offset_days:
            raise ValueError(
                f"offset_days {self.offset_days} is only allowed with an occurrence (a monthly "
                f"window such as 'second {self.weekday} + {self.offset_days} days'); a weekly "
                "window names its own day"
            )
        return self

    def text(self) -> str:
        """The window as operators write it."""
        day = self.weekday if self.occurrence is None else f"{self.occurrence} {self.weekday}"
        if self.offset_days:
            day += f" + {self.offset_days} day{'s' if self.offset_days > 1 else ''},"
        return f"{day} {self.start}-{self.end}"


class SetMaintenanceWindows(Contract):
    """Replace a group's maintenance windows."""

    group: str = Field(description="Group id or name.")
    windows: list[MaintenanceWindow] = Field(
        min_length=1,
        max_length=MAX_WINDOWS,
        description=f"1 to {MAX_WINDOWS} windows (objects or text such as "
        "`second tuesday + 1 day, 22:00-02:00`); to remove them all, clear.",
    )


class ClearMaintenanceWindows(Contract):
    """Remove every maintenance window of a group."""

    group: str = Field(description="Group id or name.")


class ListMaintenanceWindows(Contract):
    """Ask for the maintenance windows of every group that has some, or of one group."""

    group: str | None = Field(default=None, description="Group id or name; null: every group.")


class GroupWindows(Contract):
    """A group's own maintenance windows (its computers also get those of its ancestors)."""

    group_id: str = Field(description="The group.")
    group_name: str = Field(description="Its name.")
    windows: list[MaintenanceWindow] = Field(description="Its windows; empty: none of its own.")
    texts: list[str] = Field(description="The same windows as text, in the same order.")
    updated_at: AwareDatetime | None = Field(description="Last change; null: never set.")


class MaintenanceWindowList(Contract):
    """Groups and their own maintenance windows."""

    groups: list[GroupWindows] = Field(description="By group name.")


class MaintenanceWindowsChanged(Contract):
    """A group's maintenance windows were set or cleared."""

    group_id: str = Field(description="The group.")
    group_name: str = Field(description="Its name.")
    windows: list[MaintenanceWindow] = Field(description="Its windows now; empty: cleared.")
    changed_at: AwareDatetime = Field(description="When.")


def group_windows(
    group_id: str, name: str, windows: list[MaintenanceWindow], updated_at: datetime | None
) -> GroupWindows:
    return GroupWindows(
        group_id=group_id,
        group_name=name,
        windows=windows,
        texts=[w.text() for w in windows],
        updated_at=updated_at,
    )


# Examples shown in docs/asyncapi.yaml (validated by their models when this module loads).
_EXAMPLE_WINDOWS = [
    MaintenanceWindow.model_validate("second tuesday + 1 day, 22:00-02:00"),
    MaintenanceWindow.model_validate("saturday 09:00-12:00"),
]

SET_WINDOWS = command(
    "scheduler",
    "maintenance-windows",
    "set",
    SetMaintenanceWindows,
    GroupWindows,
    summary="Replace a group's maintenance windows.",
)
CLEAR_WINDOWS = command(
    "scheduler",
    "maintenance-windows",
    "clear",
    ClearMaintenanceWindows,
    GroupWindows,
    summary="Remove a group's maintenance windows.",
)
LIST_WINDOWS = command(
    "scheduler",
    "maintenance-windows",
    "list",
    ListMaintenanceWindows,
    MaintenanceWindowList,
    summary="Groups' maintenance windows.",
)
WINDOWS_CHANGED = event(
    "scheduler",
    "maintenance-windows",
    "changed",
    MaintenanceWindowsChanged,
    summary="A group's maintenance windows were set or cleared (its computers are re-planned).",
    subject="the group id",
    example=MaintenanceWindowsChanged(
        group_id="6b3e2f0a-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
        group_name="Servers",
        windows=_EXAMPLE_WINDOWS,
        changed_at=datetime(2026, 2, 10, 18, 0, tzinfo=UTC),
    ),
)

COMMANDS = (SET_WINDOWS, CLEAR_WINDOWS, LIST_WINDOWS)
EVENTS = (WINDOWS_CHANGED,)
