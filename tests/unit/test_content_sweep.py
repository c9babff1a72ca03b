"""The content sweeper's decisions (services/catalog/domain/content.py): pure, no disk."""

from __future__ import annotations

from services.catalog.domain.content import (
    FileAge,
    is_content_folder,
    plan_sweep,
    staged_name,
    staged_sha256,
)

A = "a" * 64
B = "b" * 64
C = "c" * 64
GRACE = 3600.0


def test_a_staged_name_carries_its_sha256() -> None:
    """After a crash the name alone says where a staged file belongs."""
    name = staged_name(A, "0f" * 16)
    assert staged_sha256(name) == A
    assert staged_sha256("0f" * 16) is None  # a file being assembled
    assert staged_sha256(f"{'z' * 64}.x.staged") is None
    assert (is_content_folder("ab"), is_content_folder("tmp"), is_content_folder("AB")) == (
        True,
        False,
        False,
    )


def test_a_staged_file_a_row_names_is_settled_whatever_its_age() -> None:
    """A crash between commit and the move: the committed row wins at once."""
    staged = staged_name(A, "1")
    plan = plan_sweep([FileAge(staged, 1.0)], [], {A}, GRACE)
    assert plan.settle == ((staged, A),)
    assert plan.remove_temporary == ()
    assert plan.missing == ()  # on its way into place, not missing


def test_temporary_files_no_row_names_go_only_after_the_grace_period() -> None:
    """A young one may belong to a transaction not committed yet."""
    old_staged, young_staged = staged_name(B, "1"), staged_name(B, "2")
    plan = plan_sweep(
        [
            FileAge(old_staged, GRACE + 1),
            FileAge(young_staged, 5.0),
            FileAge("assembling", GRACE + 1),
            FileAge("assembling-now", 5.0),
        ],
        [],
        set(),
        GRACE,
    )
    assert plan.settle == ()
    assert plan.remove_temporary == ("assembling", old_staged)


def test_orphans_go_after_the_grace_period_and_named_content_stays() -> None:
    plan = plan_sweep(
        [],
        [FileAge(A, GRACE * 10), FileAge(B, GRACE * 10), FileAge(C, 1.0)],
        {A},
        GRACE,
    )
    assert plan.remove_orphans == (B,)
    assert plan.missing == ()


def test_a_row_whose_file_is_nowhere_is_reported() -> None:
    plan = plan_sweep([], [FileAge(A, 1.0)], {A, B, C}, GRACE)
    assert plan.missing == (B, C)
    assert plan.remove_orphans == ()
