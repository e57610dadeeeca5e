"""Each Victron cable by its serial number: the udev rule's symlink, the profile's `serial`, the path opened."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.power.vedirect import VeDirectOptions

ROOT = Path(__file__).resolve().parents[2]


def _victron_rules() -> list[str]:
    text = (ROOT / "systemd" / "70-kioskd.rules").read_text()
    return [line for line in text.splitlines() if "VE Direct cable" in line and not line.startswith("#")]


def test_every_victron_cable_gets_a_symlink_named_by_its_serial_and_none_shares_one() -> None:
    rules = _victron_rules()
    symlinks = [m for line in rules for m in re.findall(r'SYMLINK\+="([^"]+)"', line)]
    assert symlinks == ["vedirect-$env{ID_SERIAL_SHORT}"]
    (named,) = [line for line in rules if "SYMLINK" in line]
    assert 'ENV{ID_SERIAL_SHORT}=="?*"' in named  # no serial: no "/dev/vedirect-" for two cables to fight over


def test_the_example_van_names_each_vedirect_part_by_a_serial_of_its_own() -> None:
    profile = tomllib.loads((ROOT / "profiles" / "example-van.toml").read_text())
    parts = profile["devices"]["power"]["parts"]
    devices = [
        VeDirectOptions(**{k: v for k, v in part.items() if k != "driver"}).device
        for part in parts.values()
        if part.get("driver") == "vedirect"
    ]
    assert len(devices) == 2 and len(set(devices)) == 2
    assert all(re.fullmatch(r"/dev/vedirect-HQ[0-9A-Z]+", device) for device in devices)


def test_a_part_is_named_by_serial_or_by_port_but_not_both() -> None:
    assert VeDirectOptions(serial="HQ2132ABCDE").device == "/dev/vedirect-HQ2132ABCDE"
    assert VeDirectOptions(port="/dev/ttyUSB0").device == "/dev/ttyUSB0"
    with pytest.raises(ValidationError):
        VeDirectOptions(serial="HQ2132ABCDE", port="/dev/ttyUSB0")
    with pytest.raises(ValidationError):
        VeDirectOptions()
    with pytest.raises(ValidationError):
        VeDirectOptions(serial="../../etc/passwd")
