"""What an agent needs to install a third-party update, built per computer from the catalog's
package: the content with URLs signed for that computer, detection rules, prerequisites and
requirements (libs/contracts/agents.py `Installation`)."""

from __future__ import annotations

from datetime import datetime

from libs.contracts.agents import ContentFile, Installation, Prerequisites, Requirements
from libs.contracts.catalog import DetectionRule, Package, PackageFile
from libs.domain.content_urls import ContentLinks, signed_url


def requirements_of(package: Package) -> Requirements:
    """The package's requirements (docs/product.md section 4, step 3)."""
    return Requirements(
        architecture=package.architecture,
        operating_systems=package.operating_systems,
        min_free_disk_bytes=package.min_free_disk_bytes,
        min_memory_bytes=package.min_memory_bytes,
    )


def file_name(path: str) -> str:
    """The last segment of a file's relative path (the name it is served under)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _sha256(package: Package, file: PackageFile, installer_sha256: str | None) -> str | None:
    """The file's own hash; packages published before per-file hashes name only the
    installer's (the update's `sha256`)."""
    if file.sha256 is not None:
        return file.sha256
    return installer_sha256 if file.path == package.installer else None


def detection_rules_of(package: Package) -> list[DetectionRule]:
    """The package's rules; an msi/msp given none detects itself by its product code
    (docs/product.md section 4, step 4)."""
    if package.detection_rules or package.kind == "exe" or not package.product_code:
        return list(package.detection_rules)
    return [DetectionRule(kind="msi_product_code", value=package.product_code)]


def installation(
    package: Package,
    installer_sha256: str | None,
    computer_id: str,
    links: ContentLinks,
    now: datetime,
) -> Installation:
    """The installation of one package for one computer, its files' URLs signed for it.

    A file whose sha256 the catalog did not publish cannot be verified by the agent, so it
    is not offered for download (snapshots from before per-file hashes name only the
    installer's, as `sha256`).
    """
    files: list[ContentFile] = []
    for file in package.files:
        sha256 = _sha256(package, file, installer_sha256)
        if sha256 is None:
            continue
        signed = signed_url(links, sha256, file_name(file.path), computer_id, now)
        files.append(
            ContentFile(
                path=file.path,
                size=file.size,
                sha256=sha256,
                url=signed.url,
                expires_at=signed.expires_at,
            )
        )
    return Installation(
        kind=package.kind,
        files=files,
        detection_rules=detection_rules_of(package),
        prerequisites=Prerequisites(
            package=package.prerequisite_package, rules=package.prerequisite_rules
        ),
        requirements=requirements_of(package),
    )
