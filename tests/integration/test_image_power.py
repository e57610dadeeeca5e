"""The image's power services from the profile (image-build/power/, through build.py's staging): the NUT config a
real upsd and driver accept and kioskd reads, upsmon masked (kioskd is the one shutdown owner), UPower powering off
only below kioskd's critical charge and never hibernating."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from drivers.power.nut import NutPower
from kioskd.profile import load_profile
from tests.image_stage import build_module, staged
from tests.integration.power_services import Recorder, context, free_port, nut_program, stop_process, wait_until

# Longer than the suite's 10 minutes per test (pyproject.toml):
# the first test pays the image's build (cold: mkosi, minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
ROOT = Path(__file__).resolve().parents[2]


build = build_module()


def test_a_ups_on_this_pc_brings_nut_server_and_upsmon_is_masked(tmp_path: Path) -> None:
    profile = ROOT / "profiles" / "example-bus-pi.toml"
    assert "nut-server" in build.profile_packages(tomllib.loads(profile.read_text()))
    tree = staged(tmp_path, profile)
    assert "MODE=standalone" in (tree / "etc/nut/nut.conf").read_text()
    ups = (tree / "etc/nut/ups.conf").read_text()
    assert "[dcups]" in ups and "driver = usbhid-ups" in ups and "port = auto" in ups
    assert (tree / "etc/nut/upsd.conf").read_text().splitlines()[-1] == "LISTEN 127.0.0.1 3493"
    assert os.readlink(tree / "etc/systemd/system/nut-monitor.service") == "/dev/null"
    assert (tree / "etc/systemd/system/multi-user.target.wants/nut-server.service").is_symlink()


def test_a_van_without_a_local_ups_gets_no_nut_server(tmp_path: Path) -> None:
    profile = ROOT / "profiles" / "example-van.toml"
    assert "nut-server" not in build.profile_packages(tomllib.loads(profile.read_text()))
    assert not (staged(tmp_path, profile) / "etc/nut").exists()


def test_upower_powers_off_only_below_kioskds_critical_charge_and_never_hibernates(tmp_path: Path) -> None:
    profile = tmp_path / "ups-pc.toml"
    text = (ROOT / "profiles" / "sim.toml").read_text()
    text = text.replace('[devices.power]\ndriver = "sim"', '[devices.power]\ndriver = "upower"')
    assert 'driver = "upower"' in text
    profile.write_text(text)
    critical = load_profile(profile).power_policy.critical_soc
    conf = configparser.ConfigParser()
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf.read_string((staged(tmp_path, profile) / "etc/UPower/UPower.conf").read_text())
    upower = conf["UPower"]
    assert upower["CriticalPowerAction"] == "PowerOff" and upower["UsePercentageForPolicy"] == "true"
    low, crit, action = (int(upower[k]) for k in ("PercentageLow", "PercentageCritical", "PercentageAction"))
    assert low > crit > action > 0 and action < critical and crit <= critical


def test_the_generated_nut_config_is_served_by_a_real_upsd_and_read_by_kioskd(tmp_path: Path) -> None:
    power_image = sys.modules["power_image"]
    port = free_port()
    dev = tmp_path / "dcups.dev"
    dev.write_text("ups.status: OB LB\n")  # a DC-UPS without battery.charge, about to go
    part: dict[str, Any] = {
        "driver": "nut",
        "ups": "dcups",
        "port": port,
        "server": {"driver": "dummy-ups", "port": str(dev), "settings": {"pollinterval": "1"}},
    }
    files = power_image.nut_files({"devices": {"power": {"driver": "combined", "parts": {"battery": part}}}})
    conf, state = tmp_path / "conf", tmp_path / "state"
    conf.mkdir(mode=0o700)
    state.mkdir(mode=0o700)
    for dest, text in files.items():
        (conf / Path(dest).name).write_text(text)
    env = {**os.environ, "NUT_CONFPATH": str(conf), "NUT_STATEPATH": str(state), "NUT_ALTPIDPATH": str(state)}
    user = ["-u", "root"] if os.geteuid() == 0 else []
    log = (tmp_path / "nut.log").open("ab")
    driver = subprocess.Popen([nut_program("dummy-ups"), "-a", "dcups", "-F", *user], env=env, stderr=log)
    upsd = None
    try:
        deadline = time.monotonic() + 10
        while not (state / "dummy-ups-dcups").exists():
            assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "nut.log").read_text()
            time.sleep(0.02)
        upsd = subprocess.Popen([nut_program("upsd"), "-F", *user], env=env, stderr=log)
        state_seen = _read_with_kioskd(tmp_path, port)
        assert state_seen.critical and state_seen.shore is False and state_seen.soc is None
    finally:
        stop_process(upsd)
        stop_process(driver)


def _read_with_kioskd(tmp_path: Path, port: int) -> Any:
    import asyncio

    async def read() -> Any:
        power = NutPower(context({"port": port, "ups": "dcups", "poll": 0.2}, Recorder(), tmp_path, "nut"))
        await power.start()
        try:
            await wait_until(lambda: power.state.available, "a reading through the generated config", within=20)
            return power.state
        finally:
            await power.close()

    return asyncio.run(read())
