"""`lockgate upload --min-disk/--min-memory`: sizes as operators write them."""

from __future__ import annotations

import argparse

import pytest

from services.cli.main import parser
from services.cli.upload_commands import size_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1_048_576),
        ("0", 0),
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("2GiB", 2 * 1024**3),
        ("2 GiB", 2 * 1024**3),
        ("1.5GB", 1_500_000_000),
        ("10KiB", 10_240),
        ("3kB", 3_000),
        ("1TB", 10**12),
        ("1TiB", 1024**4),
        ("7B", 7),
        ("0.5B", 0),
    ],
)
def test_sizes_in_bytes_or_with_a_unit(text: str, expected: int) -> None:
    """Decimal units are powers of 1000, binary ones of 1024; a fraction of a byte drops."""
    assert size_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "MB", "5XB", "1e9", "2 GiB free", "١٢", "0x10"])
def test_anything_else_is_refused_saying_what_is_allowed(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        size_bytes(text)
    message = str(refused.value)
    assert repr(text) in message
    assert "500MB or 2GiB" in message


def test_more_than_the_contract_allows_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"at most 1125899906842624 bytes"):
        size_bytes("1025TiB")


def test_the_upload_command_takes_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser turns the options into bytes, and names the option in its error."""
    command = parser()
    args = command.parse_args(
        ["upload", "a.msi", "--arch", "x64", "--os", "Windows 11", "--min-disk", "500MB"]
    )
    assert (args.min_disk, args.min_memory) == (500_000_000, None)
    with pytest.raises(SystemExit):
        command.parse_args(
            ["upload", "a.msi", "--arch", "x64", "--min-memory", "lots", "--os", "Windows 11"]
        )
    assert "argument --min-memory: 'lots' is not a size" in capsys.readouterr().err
