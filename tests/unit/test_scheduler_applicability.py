"""Third-party requirements against a computer's inventory (services/scheduler/domain/
applicability.py), the installation a plan carries, and install requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.agents import ComputerPlan, Requirements
from libs.contracts.catalog import DetectionRule, Package, PackageFile
from libs.contracts.policies import RECOMMENDED
from libs.domain.content_urls import ContentLinks, check
from libs.domain.resolution import NO_DEADLINE
from libs.service.errors import InvalidInput
from services.scheduler.domain import installations, plans
from services.scheduler.domain.applicability import Inventory, applies, unmet
from services.scheduler.domain.plans import PolicyInForce

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
GIB = 1024**3
LINKS = ContentLinks(key=b"k" * 32, base_url="http://content.test", days=7)
SHA = "ab" * 32


def requires(
    architecture: str = "both",
    systems: tuple[str, ...] = (),
    disk: int | None = None,
    memory: int | None = None,
) -> Requirements:
    return Requirements(
        architecture=architecture,
        operating_systems=list(systems),
        min_free_disk_bytes=disk,
        min_memory_bytes=memory,
    )


@pytest.mark.parametrize(
    ("required", "computer", "met"),
    [
        ("x86", "x86", True),
        ("x86", "x64", False),
        ("x86", "arm64", False),
        ("x64", "x64", True),
        ("x64", "x86", False),
        ("x64", "arm64", False),
        ("both", "x86", True),
        ("both", "x64", True),
        ("both", "arm64", True),
    ],
)
def test_architecture(required: str, computer: str, met: bool) -> None:
    assert applies(requires(required), Inventory(architecture=computer)) is met  # type: ignore[arg-type]


def test_operating_systems_empty_means_any_and_unknown_os_meets_them() -> None:
    assert applies(requires(systems=()), Inventory(operating_system="Windows 10"))
    wanted = requires(systems=("Windows 11", "Windows Server 2025"))
    assert applies(wanted, Inventory(operating_system="Windows 11"))
    assert applies(wanted, Inventory(operating_system="  windows 11 "))
    assert applies(wanted, Inventory(operating_system=""))
    assert not applies(wanted, Inventory(operating_system="Windows 10"))
    (why,) = unmet(wanted, Inventory(operating_system="Windows 10"))
    assert why == (
        "operating system one of Windows 11, Windows Server 2025 required, the computer runs "
        "Windows 10"
    )


def test_disk_and_memory_are_checked_only_when_both_figures_are_known() -> None:
    wanted = requires(disk=10 * GIB, memory=4 * GIB)
    assert applies(wanted, Inventory())
    assert applies(wanted, Inventory(free_disk_bytes=10 * GIB, memory_bytes=4 * GIB))
    assert not applies(wanted, Inventory(free_disk_bytes=10 * GIB - 1))
    assert not applies(wanted, Inventory(memory_bytes=4 * GIB - 1))
    assert applies(requires(), Inventory(free_disk_bytes=0, memory_bytes=0))
    assert len(unmet(wanted, Inventory("x86", "", 1, 1))) == 2


def test_an_update_without_requirements_applies() -> None:
    assert applies(None, Inventory(architecture="arm64"))


def package(architecture: str = "x64", **changes: object) -> Package:
    values: dict[str, object] = {
        "kind": "msi",
        "installer": "tool.msi",
        "files": [
            PackageFile(path="tool.msi", size=2048, sha256=SHA),
            PackageFile(path="data/extra.cab", size=100, sha256="cd" * 32),
        ],
        "architecture": architecture,
        "operating_systems": ["Windows 11"],
        "detection_rules": [DetectionRule(kind="file_exists", value="C:\\Tool\\tool.exe")],
        "prerequisite_package": None,
        "prerequisite_rules": [],
        "command_line": "/qn",
    }
    values.update(changes)
    return Package.model_validate(values)


def facts(architecture: str = "x64") -> plans.UpdateFacts:
    return plans.UpdateFacts(None, "Tool 1.0", "never", "/qn", [], package(architecture), SHA)


def plan_for(
    inventory: Inventory,
    action: str = "required_install",
    state: str = "unknown",
    fact: plans.UpdateFacts | None = None,
) -> ComputerPlan:
    plan, _ = plans.build_plan(
        plans.Computer("pc-1", "Europe/Paris", None, inventory),
        PolicyInForce(None, plans.NO_POLICY, RECOMMENDED, None),
        [("g", "u1", action, NO_DEADLINE)],  # type: ignore[list-item]
        {"u1": fact or facts()},
        {"u1": plans.Progress(state)},
        NOW,
        LINKS,
    )
    return plan


def test_a_computer_not_meeting_the_requirements_is_not_applicable_with_nothing_to_do() -> None:
    plan = plan_for(Inventory(architecture="x86"), state="needed")
    [item] = plan.items
    assert (item.state, item.install_at, item.optional) == ("not_applicable", None, False)
    assert plan.next_window is None
    assert plans.due_items(plan, forced_only=False, now=NOW + timedelta(days=30)) == []


def test_a_computer_meeting_them_gets_the_installation_signed_for_it() -> None:
    plan = plan_for(Inventory(architecture="x64", operating_system="Windows 11"))
    [item] = plan.items
    assert item.state == "unknown"
    assert item.install_at is not None
    installation = item.installation
    assert installation is not None
    assert installation.kind == "msi"
    assert installation.requirements.architecture == "x64"
    assert installation.detection_rules[0].value == "C:\\Tool\\tool.exe"
    [installer] = [f for f in installation.files if f.path == "tool.msi"]
    assert (installer.sha256, installer.size) == (SHA, 2048)
    assert installer.url.startswith(f"http://content.test/content/{SHA}/tool.msi?computer=pc-1&")
    query = dict(p.split("=", 1) for p in installer.url.split("?", 1)[1].split("&"))
    assert check(LINKS.key, SHA, "tool.msi", "pc-1", query["expires"], query["signature"], NOW) is (
        None
    )
    assert installer.expires_at == datetime(2026, 6, 18, tzinfo=UTC)
    [due] = plans.due_items(plan, forced_only=False, now=NOW)
    assert due.installation == installation
    assert (due.restart, due.command_line) == ("never", "/qn")


def test_every_file_with_its_own_hash_is_offered_for_download() -> None:
    """Extra files (a .cab beside the MSI) are downloadable too: each names its sha256."""
    [item] = plan_for(Inventory(architecture="x64", operating_system="Windows 11")).items
    assert item.installation is not None
    assert [(f.path, f.sha256) for f in item.installation.files] == [
        ("tool.msi", SHA),
        ("data/extra.cab", "cd" * 32),
    ]


def test_a_package_from_before_per_file_hashes_offers_only_its_installer() -> None:
    """Without a file's hash the agent could not verify it, so it is left out."""
    old = package(
        files=[PackageFile(path="tool.msi", size=2048), PackageFile(path="x.cab", size=9)]
    )
    built = installations.installation(old, SHA, "pc-1", LINKS, NOW)
    assert [(f.path, f.sha256) for f in built.files] == [("tool.msi", SHA)]


@pytest.mark.parametrize("kind", ["msi", "msp"])
def test_an_msi_without_rules_detects_itself_by_its_product_code(kind: str) -> None:
    """docs/product.md section 4: msi/msp detect themselves; the plan says how."""
    code = "{6F1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D}"
    bare = package(kind=kind, detection_rules=[], product_code=code)
    assert installations.detection_rules_of(bare) == [
        DetectionRule(kind="msi_product_code", value=code)
    ]
    given = package(kind=kind, product_code=code)
    assert installations.detection_rules_of(given) == given.detection_rules
    assert installations.detection_rules_of(package(kind="exe", detection_rules=[])) == []


def test_a_microsoft_update_has_no_installation() -> None:
    microsoft = plans.UpdateFacts("5073455", "KB", "always", None, [])
    [item] = plan_for(Inventory(architecture="arm64"), fact=microsoft).items
    assert item.installation is None
    assert item.state == "unknown"


def test_available_installs_that_apply_are_optional_and_may_be_requested() -> None:
    plan = plan_for(Inventory(), action="available_install", state="needed")
    [item] = plan.items
    assert item.optional is True
    assert item.install_at is None
    requested = plans.requested_item(plan, "u1")
    assert (requested.action, requested.forced) == ("required_install", False)
    assert requested.installation == item.installation


@pytest.mark.parametrize(
    ("action", "architecture"),
    [("required_install", "x64"), ("do_not_install", "x64"), ("available_install", "x86")],
)
def test_only_optional_items_may_be_requested(action: str, architecture: str) -> None:
    plan = plan_for(Inventory(architecture=architecture), action=action)  # type: ignore[arg-type]
    assert plan.items[0].optional is False
    with pytest.raises(InvalidInput, match="not an available install") as refused:
        plans.requested_item(plan, "u1")
    assert refused.value.field == "update_id"
    with pytest.raises(InvalidInput, match="is not in its plan"):
        plans.requested_item(plan, "u2")


def test_an_update_the_catalog_does_not_offer_is_never_planned() -> None:
    withdrawn = plans.UpdateFacts("5073455", "KB", "always", None, [], offered=False)
    assert plan_for(Inventory(), fact=withdrawn).items == []
    assert plan_for(Inventory(), fact=facts()).items != []


def test_disk_and_memory_requirements_come_from_the_package() -> None:
    needy = plans.UpdateFacts(
        None,
        "Big tool",
        "never",
        "/qn",
        [],
        package(min_free_disk_bytes=100 * GIB, min_memory_bytes=8 * GIB),
        SHA,
    )
    [item] = plan_for(Inventory(free_disk_bytes=99 * GIB), fact=needy).items
    assert item.state == "not_applicable"
    assert item.installation is not None
    assert item.installation.requirements.min_free_disk_bytes == 100 * GIB
    [item] = plan_for(Inventory(free_disk_bytes=100 * GIB, memory_bytes=8 * GIB), fact=needy).items
    assert item.state == "unknown"
