"""Profiles: the default loads; a broken one gives a message naming the file, the key and what was expected."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.errors import DriverNotFound, ProfileError
from kioskd.hal.loader import build_devices
from kioskd.profile import SIM_PROFILE, load_profile

GOOD = SIM_PROFILE.read_text()


def test_the_embedded_sim_profile_is_valid() -> None:
    profile = load_profile(SIM_PROFILE)
    assert profile.vehicle.id == "sim-01"
    assert {section.driver for section in profile.devices.values()} == {"sim"}


def _broken(tmp_path: Path, text: str) -> ProfileError:
    path = tmp_path / "van-42.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    return err.value


@pytest.mark.parametrize(
    ("edit", "key", "expected"),
    [
        (lambda t: t.replace("hold_time = 3.0 ", 'hold_time = "long" '), "station.hold_time", "valid number"),
        (lambda t: t.replace("hold_time = 3.0 ", "hold_time = -1 "), "station.hold_time", "greater than or equal"),
        (lambda t: t.replace("warn_soc = 30", "warn_soc = 5"), "power_policy", "critical_soc must be below warn_soc"),
        (lambda t: t.replace('id = "sim-01"', 'id = "sim 01/.."'), "vehicle.id", "match pattern"),
        (lambda t: t.replace("[station]", "[station]\nholdtime = 2"), "station.holdtime", "unknown key"),
        (lambda t: t.replace('[devices.camera]\ndriver = "sim"\n', ""), "devices", "missing: camera"),
        (lambda t: t.replace('workspace = "auto"', 'workspace = "ramdisk"'), "station.workspace", "'tmpfs'"),
        (lambda t: t.replace("[vehicle]", "[vehicule]"), "vehicle", "missing"),
    ],
    ids=["type", "range", "cross-field", "pattern", "misspelt", "missing-device", "choice", "missing-table"],
)
def test_broken_profile_names_file_key_and_expectation(tmp_path: Path, edit, key: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    text = edit(GOOD)
    assert text != GOOD, "the edit must change the profile"
    error = _broken(tmp_path, text)
    message = str(error)
    assert "van-42.toml" in message
    assert key in message
    assert expected in message


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = str(_broken(tmp_path, GOOD.replace("[station]", "[station\n")))
    assert "van-42.toml" in message and "not valid TOML" in message and "line" in message


def test_unreadable_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")


def _build(tmp_path: Path, text: str) -> None:
    path = tmp_path / "van-42.toml"
    path.write_text(text)
    profile = load_profile(path)
    build_devices(profile, ManualClock(), lambda _: None, tmp_path)


def test_unknown_backend_names_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(DriverNotFound) as err:
        _build(tmp_path, GOOD.replace('[devices.modem]\ndriver = "sim"', '[devices.modem]\ndriver = "qmi"'))
    assert "devices.modem.driver" in str(err.value) and "sim" in str(err.value)


def test_bad_backend_option_is_named_with_its_section(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as err:
        _build(tmp_path, GOOD.replace("signal = 70", "signal = 170"))
    assert "van-42.toml" in str(err.value) and "devices.modem.signal" in str(err.value)
    with pytest.raises(ProfileError) as err:
        _build(tmp_path, GOOD.replace("paper = 250", "paper = 250\npaper_size = 'A4'"))
    assert "devices.printer.paper_size" in str(err.value)


def test_driver_override_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSKD_DRIVER_MODEM", "nonexistent")
    with pytest.raises(DriverNotFound):
        _build(tmp_path, GOOD)


def test_daemon_refuses_to_start_on_a_broken_profile(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "van-42.toml"
    path.write_text(GOOD.replace("critical_soc = 10", "critical_soc = 'ten'"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kioskd.daemon",
            "--profile",
            str(path),
            "--runtime-dir",
            str(tmp_path / "r"),
            "--state-dir",
            str(tmp_path / "s"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "van-42.toml" in result.stderr and "power_policy.critical_soc" in result.stderr
    assert "Traceback" not in result.stderr
    assert asyncio is not None
