"""catalog's pure rules: update records and references, settings, upload steps, third-party."""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from libs.contracts import catalog as c
from libs.contracts import uploads as u
from libs.domain.agent_reports import DEFAULT_RETURN_CODES
from libs.service.errors import Conflict, InvalidInput, NotFound
from services.catalog.domain.documents import document_bytes
from services.catalog.domain.model import (
    Classification,
    Product,
    RestartBehaviour,
    Severity,
    SourceUpdate,
)
from services.catalog.domain.offers import SettingsInForce
from services.catalog.domain.settings import changed_settings, settings_view
from services.catalog.domain.third_party import (
    StoredFile,
    check_third_party,
    edited,
    package,
    third_party_content,
    update_id_of,
)
from services.catalog.domain.updates import (
    StoredUpdate,
    UpdateRef,
    catalog_fields,
    content_from_json,
    content_json,
    merge,
    snapshot,
    update_id_for_kb,
    update_reference,
)
from services.catalog.domain.uploads import (
    Upload,
    UploadSteps,
    check_detection_asked,
    check_silent,
    default_title,
    missing_steps,
    session,
    steps_from_json,
    steps_json,
    with_received_defaults,
)

JAN, FEB = datetime(2026, 1, 13, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC)
UPDATE_ID = "0b5f3c2e-8f0a-4c47-9d55-0d6f6c1a2b3c"
IN_FORCE = SettingsInForce(
    c.CatalogSettings(products=["Windows"], classifications=["Security Updates"]), version=4
)


def source_update() -> SourceUpdate:
    return SourceUpdate(
        kb="5074109",
        title="2026-01 Security Update for Windows (KB5074109)",
        products=(Product("11926", "Windows 11 Version 25H2 for x64", "Windows"),),
        classification=Classification.SECURITY_UPDATES,
        severity=Severity.IMPORTANT,
        cves=("CVE-2026-0001",),
        release_date=JAN,
        restart=RestartBehaviour.MAY_REQUEST,
        fixed_builds=("10.0.26200.7623",),
        url="https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB5074109",
        supersedes=("5072033",),
        subtype="Security Update",
    )


def stored() -> StoredUpdate:
    return StoredUpdate(
        update_id=update_id_for_kb("5074109"),
        origin="microsoft",
        kb="5074109",
        revision=1,
        content_hash="hash",
        content=catalog_fields(source_update()),
        superseded_at=None,
        expired_at=None,
        superseded_by=(),
        superseded_by_kbs=(),
    )


def test_a_reference_is_an_update_id_or_else_a_kb() -> None:
    """Operators name updates either way; a KB is written with or without its prefix."""
    assert update_reference(UPDATE_ID.upper()) == UpdateRef(update_id=UPDATE_ID)
    assert update_reference("kb5074109") == UpdateRef(kb="5074109")
    with pytest.raises(InvalidInput, match="not a KB number"):
        update_reference("latest")


def test_merge_unites_sets_keeps_the_highest_and_the_earliest() -> None:
    """Documents disagree over time; the merged update is the same in any import order."""
    january = source_update()
    february = replace(
        january,
        title="2026-02 title",
        release_date=FEB,
        cves=("CVE-2026-0002",),
        severity=Severity.CRITICAL,
        restart=RestartBehaviour.NEVER,
    )
    merged = merge([february, january])
    assert merged == merge([january, february])
    assert (merged.title, merged.release_date) == ("2026-02 title", JAN)
    assert merged.cves == ("CVE-2026-0001", "CVE-2026-0002")
    assert (merged.severity, merged.restart) == (Severity.CRITICAL, RestartBehaviour.MAY_REQUEST)


def test_microsoft_content_is_stored_without_a_package_and_reads_back() -> None:
    """The stored JSON keeps the shape the catalog always wrote (isoformat dates, no package)."""
    content = catalog_fields(source_update())
    data = json.loads(content_json(content))
    assert "package" not in data
    assert data["release_date"] == "2026-01-13T00:00:00+00:00"
    assert data["return_codes"] == [r.model_dump() for r in DEFAULT_RETURN_CODES]
    assert content_from_json(content_json(content)) == content


def test_snapshot_adds_identity_supersession_and_expiry() -> None:
    """Events and the API carry the stored content plus what the row knows."""
    row = replace(
        stored(),
        revision=3,
        superseded_by=(UPDATE_ID,),
        superseded_by_kbs=("5077181",),
        expired_at=FEB,
    )
    view = snapshot(row, IN_FORCE)
    assert (view.update_id, view.revision, view.origin) == (row.update_id, 3, "microsoft")
    assert (view.offered, view.not_offered_because, view.settings_version) == (True, None, 4)
    assert (view.superseded_by, view.superseded_by_kbs) == ([UPDATE_ID], ["5077181"])
    assert view.expired
    assert (view.classification, view.severity, view.restart) == (
        "Security Updates",
        "Important",
        "may_request",
    )


def test_a_document_must_be_base64_of_gzip() -> None:
    """The import command carries the document compressed; anything else is refused."""
    raw = b"<cvrfdoc/>"
    good = c.ImportDocument(content_gzip_b64=base64.b64encode(gzip.compress(raw)).decode())
    assert document_bytes(good) == raw
    bad = c.ImportDocument(content_gzip_b64=base64.b64encode(raw).decode())
    with pytest.raises(InvalidInput, match="not base64 of gzip data"):
        document_bytes(bad)


def test_settings_changes_keep_what_they_leave_out() -> None:
    """Only the given lists change; classifications come back in the product's order."""
    view = settings_view(
        c.CatalogSettings(products=["Windows"], classifications=["Updates"]),
        ["Microsoft Office", "Windows"],
    )
    assert view.available_products == ["Microsoft Office", "Windows"]
    wanted = changed_settings(
        view, c.ChangeSettings(classifications=["Updates", "Critical Updates"])
    )
    assert wanted == c.CatalogSettings(
        products=["Windows"], classifications=["Critical Updates", "Updates"]
    )
    with pytest.raises(InvalidInput, match="not product categories"):
        changed_settings(view, c.ChangeSettings(products=["Visual Studio"]))


def upload(steps: UploadSteps | None = None, kind: str = "exe") -> Upload:
    return Upload(
        upload_id="u1",
        state="received",
        refusal=None,
        files=[c.UploadFile(path=f"setup.{kind}", size=10), c.UploadFile(path="a.cab", size=5)],
        received_bytes=15,
        steps=steps or UploadSteps(),
        extracted=u.Extracted(
            kind="exe",
            product_name="Fabrikam Agent",
            version="4.3",
            manufacturer="Fabrikam",
            product_code=None,
            description=None,
        ),
    )


def test_only_answered_steps_are_stored() -> None:
    """Unanswered steps stay absent, so what is missing reads the same after a reload."""
    steps = UploadSteps(title="Agent", architecture="x64", operating_systems=("Windows 11",))
    assert json.loads(steps_json(steps)) == {
        "title": "Agent",
        "architecture": "x64",
        "operating_systems": ["Windows 11"],
    }
    assert steps_from_json(steps_json(steps)) == steps


def test_received_defaults_fill_only_unanswered_steps() -> None:
    """The installer prefills the description step; the operator's answers win."""
    extracted = upload().extracted
    assert extracted is not None
    filled = with_received_defaults(UploadSteps(title="Mine"), extracted)
    assert (filled.title, filled.description, filled.classification) == ("Mine", "", "Updates")
    assert default_title(extracted) == "Fabrikam Agent 4.3"
    assert default_title(None) == "Unnamed package"


def test_what_is_missing_before_commit() -> None:
    """Content, description and requirements always; a silent switch for an .exe."""
    assert missing_steps("msi", UploadSteps(), "receiving") == [
        "content",
        "description",
        "requirements",
    ]
    answered = UploadSteps(title="t", architecture="x64", command_line=" ")
    assert missing_steps("msi", answered, "received") == []
    assert missing_steps("exe", answered, "received") == [
        "command_line (an .exe must install silently, e.g. /S or /quiet)"
    ]


def test_step_rules_by_installer_kind() -> None:
    """Windows Installer packages detect themselves; programs need a silent switch."""
    with pytest.raises(InvalidInput, match=r"not asked for \.msp"):
        check_detection_asked("msp")
    check_detection_asked("exe")
    with pytest.raises(InvalidInput, match=r"not allowed for an \.exe"):
        check_silent("exe", "  ")
    assert check_silent("msi", " /qn ") == "/qn"


def test_session_shows_defaults_for_unanswered_steps() -> None:
    """Return codes default to 0 and 3010; lists to empty."""
    view = session(upload())
    assert view.return_codes == list(DEFAULT_RETURN_CODES)
    assert (view.operating_systems, view.detection_rules, view.command_line) == ([], [], None)
    assert view.total_bytes == 15


def stored_files(upload_: Upload) -> list[StoredFile]:
    """The upload's files as the content store would keep them (a hash each)."""
    return [
        StoredFile(path=f.path, sha256=f"{n:064x}", size=f.size)
        for n, f in enumerate(upload_.files, start=1)
    ]


def test_a_package_names_every_stored_file_hash_and_the_product_code() -> None:
    """The agent verifies each file it downloads, and an msi detects itself by its code."""
    msi = replace(
        upload(UploadSteps(title="Notes", architecture="x64", command_line="/qn"), kind="msi"),
        extracted=u.Extracted(
            kind="msi",
            product_name="Contoso Notes",
            version="3.1.0",
            manufacturer="Contoso",
            product_code="{6F1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D}",
            description=None,
        ),
    )
    stored = stored_files(msi)
    installing = package(msi, stored)
    assert [(f.path, f.sha256) for f in installing.files] == [
        ("setup.msi", stored[0].sha256),
        ("a.cab", stored[1].sha256),
    ]
    assert installing.product_code == "{6F1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D}"


def test_third_party_content_comes_from_the_answers_and_the_installer() -> None:
    """Name and family from the installer, everything else from the steps."""
    answered = upload(
        UploadSteps(
            title="Agent", architecture="x64", operating_systems=("Windows 11",), command_line="/S"
        )
    )
    content = third_party_content(answered, package(answered, stored_files(answered)), "abc", FEB)
    assert (content.kb, content.title, content.classification) == (None, "Agent", "Updates")
    assert content.products == (
        c.ProductRef(product_id="Fabrikam Agent", name="Fabrikam Agent", family="Fabrikam"),
    )
    assert (content.size_bytes, content.sha256, content.release_date) == (15, "abc", FEB)
    assert content.package is not None
    assert (content.package.kind, content.package.command_line) == ("exe", "/S")
    assert json.loads(content_json(content))["package"]["installer"] == "setup.exe"


def test_an_edit_that_changes_nothing_is_no_revision() -> None:
    """Equal content means no new revision; an .exe keeps a silent switch."""
    answered = upload(
        UploadSteps(
            title="Agent", architecture="x64", operating_systems=("Windows 11",), command_line="/S"
        )
    )
    content = third_party_content(answered, package(answered, stored_files(answered)), "abc", FEB)
    same = u.EditUpdate(update=UPDATE_ID, title="Agent", command_line=" /S ")
    assert edited(content, same) == content
    renamed = edited(content, u.EditUpdate(update=UPDATE_ID, title="Agent 2"))
    assert renamed.title == "Agent 2"
    with pytest.raises(InvalidInput, match=r"not allowed for an \.exe"):
        edited(content, u.EditUpdate(update=UPDATE_ID, command_line=""))


def test_only_third_party_updates_are_edited_or_deleted() -> None:
    """Microsoft updates come from MSRC; third-party ones are named by update id only."""
    assert update_id_of("KB5074109") is None
    assert update_id_of(UPDATE_ID) == UPDATE_ID
    with pytest.raises(NotFound):
        check_third_party(None, "KB5074109", "edited")
    with pytest.raises(Conflict, match="is a Microsoft update"):
        check_third_party(stored(), UPDATE_ID, "deleted")


def test_disk_and_memory_requirements_reach_the_session_and_the_package() -> None:
    """Step 3's optional sizes are kept as answered, shown, and travel in the package the
    scheduler turns into the agent's requirements; unanswered, they stay absent."""
    steps = UploadSteps(
        title="Agent",
        architecture="x64",
        operating_systems=("Windows 11",),
        min_free_disk_bytes=500_000_000,
        min_memory_bytes=0,
        command_line="/S",
    )
    assert steps_from_json(steps_json(steps)) == steps
    answered = upload(steps)
    view = session(answered)
    assert (view.min_free_disk_bytes, view.min_memory_bytes) == (500_000_000, 0)
    installing = package(answered, stored_files(answered))
    assert (installing.min_free_disk_bytes, installing.min_memory_bytes) == (500_000_000, 0)
    bare_upload = upload(replace(steps, min_free_disk_bytes=None, min_memory_bytes=None))
    bare = package(bare_upload, stored_files(bare_upload))
    assert (bare.min_free_disk_bytes, bare.min_memory_bytes) == (None, None)
    assert "min_memory_bytes" not in steps_json(UploadSteps(architecture="x64"))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("min_free_disk_bytes", -1, "greater than or equal to 0"),
        ("min_memory_bytes", 2**50 + 1, "less than or equal to 1125899906842624"),
    ],
)
def test_a_size_requirement_out_of_range_is_refused_naming_it(
    field: str, value: int, allowed: str
) -> None:
    """The contract bounds the sizes; the error names the field, the value and the range."""
    with pytest.raises(ValueError, match=allowed) as caught:
        u.SetRequirements.model_validate(
            {"upload_id": "u1", "architecture": "x64", "operating_systems": ["Windows 11"]}
            | {field: value}
        )
    assert field in str(caught.value)
    assert str(value) in str(caught.value)
