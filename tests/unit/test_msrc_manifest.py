"""The checksum manifest of a folder of MSRC documents carried into a disconnected network
(services/catalog/sources/manifest.py) and `lockgate catalog import-msrc <folder>`'s checks
before it sends anything (--write-manifest, --verify-only, refusals)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.catalog.sources.manifest import (
    MANIFEST_NAME,
    ManifestError,
    manifest_text,
    parse_manifest,
    verify_folder,
    write_manifest,
)
from services.cli.main import main

DATA = Path(__file__).resolve().parents[2] / "data" / "msrc"
A = "a" * 64
B = "B" * 64


def folder_of(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "carried"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def sums(files: dict[str, bytes]) -> str:
    return "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items())


def test_parse_reads_text_and_binary_lines_and_skips_blank_ones() -> None:
    assert parse_manifest(f"{A}  one.xml\n\n{B} *two words.xml\n") == {
        "one.xml": A,
        "two words.xml": B.lower(),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{A} one.xml", r"line 1: .* is not '<64 hex digits>  <file name>'"),
        (f"{A[:-1]}  one.xml", r"line 1: .* is not '<64 hex digits>  <file name>'"),
        (f"{A}  one.xml\nnot a line", r"line 2: 'not a line' is not"),
        (f"{A}  sub/one.xml", r"line 1: file name 'sub/one.xml' has a folder part"),
        (f"{A}  ..", r"file name '\.\.' has a folder part"),
        (f"{A}  one.xml\n{B}  one.xml", r"line 2: 'one.xml' is listed again"),
        (f"{A}  {MANIFEST_NAME}", r"the manifest lists itself"),
        (f"\\{A}  one\\nxml", r"line 1: .* is an escaped name"),
        ("\n\n", r"lists no file"),
    ],
)
def test_parse_refuses_what_sha256sum_would_not_write(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)


def test_the_same_line_twice_is_one_entry() -> None:
    assert parse_manifest(f"{A}  one.xml\n{A}  one.xml\n") == {"one.xml": A}


def test_an_intact_folder_is_verified_file_by_file(tmp_path: Path) -> None:
    files = {"cvrf-2026-Jan.xml": b"<jan/>", "README.md": b"notes"}
    folder = folder_of(tmp_path, files)
    (folder / MANIFEST_NAME).write_text(sums(files))
    verified = verify_folder(folder)
    assert [(v.path.name, v.sha256, v.is_document) for v in verified] == [
        ("README.md", hashlib.sha256(b"notes").hexdigest(), False),
        ("cvrf-2026-Jan.xml", hashlib.sha256(b"<jan/>").hexdigest(), True),
    ]


def test_every_fault_of_a_folder_is_named_and_the_folder_refused(tmp_path: Path) -> None:
    """A file the manifest does not list, a listed file that is absent and a changed file:
    one refusal naming each, with both checksums of the changed one."""
    listed = {"jan.xml": b"<jan/>", "feb.xml": b"<feb/>", "mar.xml": b"<mar/>"}
    folder = folder_of(tmp_path, {"jan.xml": b"<jan/>", "feb.xml": b"<feb!>", "extra.xml": b""})
    (folder / MANIFEST_NAME).write_text(sums(listed))
    with pytest.raises(ManifestError) as refused:
        verify_folder(folder)
    message = str(refused.value)
    assert "refused, nothing imported" in message
    assert f"'extra.xml' is in the folder but not in {MANIFEST_NAME}" in message
    assert f"'mar.xml' is listed in {MANIFEST_NAME} but absent from the folder" in message
    assert (
        f"'feb.xml' has SHA-256 {hashlib.sha256(b'<feb!>').hexdigest()}, {MANIFEST_NAME} says "
        f"{hashlib.sha256(b'<feb/>').hexdigest()}"
    ) in message
    assert "'jan.xml'" not in message


def test_a_folder_without_manifest_or_with_a_sub_folder_is_refused(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, {"jan.xml": b"<jan/>"})
    with pytest.raises(ManifestError, match=f"has no {MANIFEST_NAME}"):
        verify_folder(folder)
    (folder / MANIFEST_NAME).write_text(sums({"jan.xml": b"<jan/>"}))
    (folder / "more").mkdir()
    with pytest.raises(ManifestError, match=r"holds 'more', which is not a regular file"):
        verify_folder(folder)
    with pytest.raises(ManifestError, match="is not a folder"):
        verify_folder(folder / "jan.xml")


def test_written_manifest_verifies_and_matches_sha256sum(tmp_path: Path) -> None:
    files = {"b.xml": b"<b/>", "a.xml": b"<a/>", "name with space.md": b"x"}
    folder = folder_of(tmp_path, files)
    path, listed = write_manifest(folder)
    assert (path, listed) == (folder / MANIFEST_NAME, 3)
    assert [v.path.name for v in verify_folder(folder)] == sorted(files)
    # Written again, the manifest does not list itself.
    assert write_manifest(folder)[1] == 3
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum on this machine to compare the format with")
    names = sorted(files)
    done = subprocess.run(
        ["sha256sum", "--", *names], cwd=folder, capture_output=True, text=True, check=True
    )
    assert manifest_text(folder) == done.stdout
    checked = subprocess.run(
        ["sha256sum", "-c", MANIFEST_NAME], cwd=folder, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def carried_msrc(tmp_path: Path) -> Path:
    """The real MSRC documents and their README, as a folder carried in."""
    folder = tmp_path / "msrc"
    shutil.copytree(DATA, folder)
    return folder


def test_cli_writes_the_manifest_and_verifies_the_real_documents_in_release_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """By name February comes first; by release (what the import follows) January does."""
    folder = carried_msrc(tmp_path)
    assert main(["--json", "catalog", "import-msrc", "--write-manifest", str(folder)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written == {"manifest": str(folder / MANIFEST_NAME), "files": 3}
    assert main(["--json", "catalog", "import-msrc", "--verify-only", str(folder)]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["documents"] == ["2026-Jan", "2026-Feb"]
    assert {f["file"]: f["sha256"] for f in checked["verified"]} == {
        name: hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        for name in ("README.md", "cvrf-2026-Feb.xml", "cvrf-2026-Jan.xml")
    }


def test_cli_refuses_a_changed_document_before_sending_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No console is reachable here: a refusal that tried to import would say so instead."""
    monkeypatch.setenv("LOCKGATE_URL", "http://127.0.0.1:9")
    folder = carried_msrc(tmp_path)
    main(["catalog", "import-msrc", "--write-manifest", str(folder)])
    with (folder / "cvrf-2026-Jan.xml").open("ab") as damaged:
        damaged.write(b"\n")
    capsys.readouterr()
    assert main(["catalog", "import-msrc", str(folder)]) == 1
    error = capsys.readouterr().err
    assert "nothing imported" in error
    assert "'cvrf-2026-Jan.xml' has SHA-256" in error
    assert "cvrf-2026-Feb.xml" not in error
    assert "cannot reach the console" not in error


def test_cli_refuses_a_listed_file_that_is_not_a_cvrf_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Intact but not importable: refused by name with the parser's reason, nothing sent."""
    folder = carried_msrc(tmp_path)
    (folder / "cvrf-2026-Mar.xml").write_bytes((DATA / "cvrf-2026-Feb.xml").read_bytes()[:5000])
    main(["catalog", "import-msrc", "--write-manifest", str(folder)])
    capsys.readouterr()
    assert main(["catalog", "import-msrc", "--verify-only", str(folder)]) == 1
    error = capsys.readouterr().err
    assert "'cvrf-2026-Mar.xml' matches SHA256SUMS but is not an MSRC CVRF document" in error


def test_cli_manifest_options_need_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "import-msrc", "--verify-only", str(DATA / "cvrf-2026-Jan.xml")]) == 1
    assert "is not a folder" in capsys.readouterr().err
