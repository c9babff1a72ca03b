"""Pause, resume and roll back an update's approval (docs/product.md, "Pause, resume, roll
back").

- A pause holds installs, never removals: it marks the effective approvals whose action is
  `required_install` or `available_install`; an `uninstall` goes on (so a rollback is never
  held by the pause that usually comes before it).
- Fleet-wide (no group): every group where the update is approved, and approvals made while
  it stays paused.
- On a group: that group, and the groups below it that inherit the same approval from it; a
  group below with an explicit approval of its own is not held.
- Pausing where a pause already is changes nothing and keeps the first one's who, why and
  when: Alertmanager repeats a firing alert, and the first pause is the one to explain.
- Resuming fleet-wide lifts every pause of the update; resuming a group lifts the pause set
  on it, and is refused when the group is held from elsewhere (fleet-wide, or by a parent),
  naming where.
- Rolling back makes the approval `uninstall`: fleet-wide on every group with an explicit
  install approval of the update, or on the one group (and what inherits from it), which
  must be approved for install.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from libs.contracts.approval import ActionName
from libs.service.errors import InvalidInput
from services.approval.domain.tree import Effective, Explicit, Paused, Tree

PAUSABLE: frozenset[ActionName] = frozenset({"required_install", "available_install"})
"""Actions a pause holds: the ones that install."""

Pauses = Mapping[str | None, Paused]
"""An update's pauses by the group they are set on (None: fleet-wide)."""


def with_pauses(
    tree: Tree, wanted: Mapping[str, Effective], pauses: Pauses
) -> dict[str, Effective]:
    """The effective approvals of one update with the pause that holds each (if any).

    Walks the tree parents first: a group's approval inherited from its parent carries the
    parent's pause; one set on the group itself carries only a pause set on the group. A
    fleet-wide pause holds every group.
    """
    fleet = pauses.get(None)
    carried: dict[str, Paused | None] = {}
    result: dict[str, Effective] = {}
    for group in tree.walk():
        value = wanted.get(group)
        if value is None:
            carried[group] = None
            continue
        parent = tree.parents[group]
        inherited = (
            carried.get(parent) if parent is not None and value.source_group != group else None
        )
        pause = fleet or pauses.get(group) or inherited
        carried[group] = pause
        held = pause if value.action in PAUSABLE else None
        result[group] = value if value.paused == held else replace(value, paused=held)
    return result


def where(pause: Paused, names: Mapping[str, str]) -> str:
    """Where a pause was set, in words."""
    if pause.group is None:
        return "fleet-wide"
    return f"on group {names.get(pause.group, pause.group)!r}"


def said(pause: Paused, names: Mapping[str, str]) -> str:
    """A pause in words: where, since when, by whom, why."""
    return (
        f"paused {where(pause, names)} since {pause.at.isoformat()} by {pause.by}: {pause.reason}"
    )


def to_resume(
    pauses: Pauses,
    group: str | None,
    held: Effective | None,
    *,
    names: Mapping[str, str],
    field: str = "group",
) -> list[str | None]:
    """Which pauses resuming lifts (by the group they are set on; empty: none to lift).

    Fleet-wide: every pause of the update. A group: the pause set on it; a group held by a
    pause set elsewhere is refused, naming where to resume instead.
    """
    if group is None:
        return list(pauses)
    if group in pauses:
        return [group]
    if held is not None and held.paused is not None:
        pause = held.paused
        how = "resume it fleet-wide (no group)" if pause.group is None else "resume that group"
        raise InvalidInput(
            f"{field}: group {names.get(group, group)!r} has no pause of its own; its "
            f"approval is {said(pause, names)}: {how}",
            field=field,
        )
    return []


def check_installs_there(
    value: Effective | None,
    group: str,
    *,
    update: str,
    names: Mapping[str, str],
    nothing: str,
    field: str = "group",
) -> None:
    """Refuse, naming why, a pause or rollback on a group where the update is not approved
    for install (`value`: its effective approval there; `nothing`: what the refusal ends
    with, "nothing to pause there ...")."""
    if value is None or value.action not in PAUSABLE:
        now = "not approved" if value is None else f"approved for {value.action}"
        raise InvalidInput(
            f"{field}: update {update!r} is {now} in group {names.get(group, group)!r}, not "
            f"approved for install (required_install or available_install): {nothing}",
            field=field,
        )


def to_roll_back(
    tree: Tree,
    explicit: Mapping[str, Explicit],
    held: Mapping[str, Effective],
    group: str | None,
    *,
    update: str,
    names: Mapping[str, str],
    field: str = "group",
) -> list[str]:
    """The groups whose explicit approval a rollback sets to `uninstall`, in tree order.

    Fleet-wide: every group with an explicit install approval (required or available) of
    the update. A group: that group, which must be approved for install (explicitly or by
    inheritance). Refused, naming why, when nothing is approved for install there.
    """
    if group is None:
        found = [g for g in tree.walk() if g in explicit and explicit[g].action in PAUSABLE]
        if not found:
            raise InvalidInput(
                f"update {update!r} is approved for install in no group: nothing to roll back",
                field="update",
            )
        return found
    check_installs_there(
        held.get(group),
        group,
        update=update,
        names=names,
        nothing="nothing to roll back there",
        field=field,
    )
    return [group]
