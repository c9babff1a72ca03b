"""What an upload session tells the wizard that resumes it: each file's bytes received, the
steps answered, and when it expires (services/catalog/domain/uploads.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.contracts.uploads import UploadState
from services.catalog.domain.uploads import (
    Upload,
    UploadSteps,
    answered_steps,
    session,
    steps_from_json,
    steps_json,
    with_received_defaults,
)

AT = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
EXTRACTED = u.Extracted(
    kind="exe",
    product_name="Fabrikam Agent",
    version="4.3",
    manufacturer="Fabrikam",
    product_code=None,
    description="Fabrikam's agent",
)


def receiving(received: dict[str, int]) -> Upload:
    return Upload(
        upload_id="u1",
        state="receiving",
        refusal=None,
        files=[c.UploadFile(path="setup.exe", size=10), c.UploadFile(path="a/b.cab", size=5)],
        received_bytes=sum(received.values()),
        received_by_file=received,
        created_at=AT,
        updated_at=AT + timedelta(minutes=5),
    )


def progress(view: u.UploadSession) -> list[tuple[str, int, int]]:
    return [(f.path, f.size, f.received_bytes) for f in view.file_progress]


def test_a_receiving_upload_shows_each_file_s_bytes_received_installer_first() -> None:
    """The offset each file resumes at; a file not started yet is at 0."""
    view = session(receiving({"setup.exe": 4}))
    assert progress(view) == [("setup.exe", 10, 4), ("a/b.cab", 5, 0)]
    assert view.received_bytes == 4
    assert (view.created_at, view.updated_at) == (AT, AT + timedelta(minutes=5))


@pytest.mark.parametrize(
    ("state", "received"),
    [
        ("received", [10, 5]),
        ("committed", [10, 5]),
        ("refused", [0, 0]),
        ("cancelled", [0, 0]),
        ("expired", [0, 0]),
    ],
)
def test_other_states_know_each_file_s_bytes_from_the_state(
    state: UploadState, received: list[int]
) -> None:
    """Received and committed uploads have every byte; the others dropped theirs."""
    ended = replace(receiving({}), state=state)
    assert [f.received_bytes for f in session(ended).file_progress] == received


def test_an_open_upload_expires_its_expiry_after_its_last_activity() -> None:
    """expires_at is updated_at plus LOCKGATE_UPLOAD_EXPIRY_HOURS while it is open."""
    upload = receiving({})
    assert session(upload, 24).expires_at == AT + timedelta(minutes=5, hours=24)
    assert session(replace(upload, state="received"), 1.5).expires_at == AT + timedelta(minutes=95)
    assert session(upload).expires_at is None, "no expiry given"
    for ended in ("committed", "refused", "cancelled", "expired"):
        assert session(replace(upload, state=ended), 24).expires_at is None


def test_answered_steps_in_the_procedure_s_order() -> None:
    """Steps 3-7 count once their answer is stored; an empty answer is an answer."""
    assert answered_steps(UploadSteps()) == []
    steps = UploadSteps(
        return_codes=(c.ReturnCode(code=0, outcome="success"),),
        architecture="x64",
        operating_systems=("Windows 11",),
        detection_rules=(),
        prerequisite_rules=(),
        command_line="",
    )
    assert answered_steps(steps) == [
        "requirements",
        "detection_rules",
        "prerequisites",
        "command_line",
        "return_codes",
    ]


def test_the_installer_s_suggestion_is_not_an_answer_to_the_description_step() -> None:
    """Once every byte arrived, step 2 holds the extracted values but is not answered; it is
    once the operator describes the upload, and that survives a reload."""
    prefilled = with_received_defaults(UploadSteps(), EXTRACTED)
    view = session(replace(receiving({}), state="received", steps=prefilled, extracted=EXTRACTED))
    assert (view.title, view.description) == ("Fabrikam Agent 4.3", "Fabrikam's agent")
    assert view.extracted == EXTRACTED
    assert view.answered == []
    assert view.missing == [
        "requirements",
        "command_line (an .exe must install silently, e.g. /S or /quiet)",
    ]
    described = replace(prefilled, described=True)
    assert answered_steps(steps_from_json(steps_json(described))) == ["description"]
    assert "described" not in steps_json(prefilled), "unanswered steps stay absent"
