"""The van's image, built with mkosi from profiles/sim.toml and booted with systemd-nspawn: kioskd.service reaches
READY, ``kioskctl --json status`` answers inside, CUPS and logind run with the van's configuration.

The image is built by ``image-build/build.py`` into a cache directory of this checkout; the build is skipped when
none of its inputs changed (the build keeps their hash next to the image), so only the first run after a change pays
for it (about 85 s cold, 30 s with mkosi's caches). A test-only unit, bound into /run/systemd/system, waits for
kioskd, writes what it sees to a bound host directory and powers the container off."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.require import binary

# Longer than the suite's 10 minutes per test (pyproject.toml):
# the first test pays the image's build (cold: mkosi, minutes).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KIOSKD_IMAGE_CACHE", "/var/cache/kioskd-image"))
MKOSI_HINT = "mkosi debootstrap systemd-container"
BUILD = [sys.executable, str(ROOT / "image-build/build.py"), "--profile", str(ROOT / "profiles/sim.toml")]

CHECK_UNIT = """\
[Unit]
Description=image test: report what kioskd and its neighbours look like, then power off
After=kioskd.service cups.service systemd-logind.service

[Service]
Type=oneshot
ExecStart=/bin/sh /run/kioskd-image-check/check.sh
"""

# Waits for kioskd's start job to end (READY=1 or failure), then records. Every probe writes to its own file so a
# failing one does not hide the others.
CHECK_SCRIPT = """\
#!/bin/sh
R=/run/kioskd-image-check/out
for i in $(seq 1 600); do
    s=$(systemctl is-active kioskd.service)
    [ "$s" = active ] || [ "$s" = failed ] && break
    sleep 0.1
done
systemctl show -p ActiveState,SubState,StatusText,Result,NRestarts,ActiveEnterTimestampMonotonic kioskd.service \
    > $R/kioskd.show
systemctl show -p UserspaceTimestampMonotonic > $R/manager.show
/opt/kioskd/bin/kioskctl --json status > $R/status.json 2> $R/status.err; echo $? > $R/status.rc
systemctl is-active cups.service > $R/cups.active 2>&1
lpstat -r > $R/lpstat.txt 2>&1
busctl get-property org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager \
    InhibitDelayMaxUSec > $R/logind.txt 2>&1
findmnt -n -o FSTYPE -T /run/kioskd/sessions > $R/sessions.fs 2>&1
stat -c '%U %a' /run/kioskd/sessions > $R/sessions.stat 2>&1
id kiosk > $R/kiosk.id 2>&1
PID=$(systemctl show -p MainPID --value kioskd.service)
ps -o supgrp= -p "$PID" > $R/kioskd.groups 2>&1
for action in power-off inhibit-delay-shutdown reboot; do
    pkcheck --action-id org.freedesktop.login1.$action --process "$PID" > /dev/null 2>&1; echo "$action $?"
done > $R/polkit.txt
runuser -l agent -c 'kioskctl --json status' > $R/agent.json 2> $R/agent.err; echo $? > $R/agent.rc
runuser -u agent -- env -i PATH=/usr/bin:/bin /opt/kioskd/bin/kioskctl --json status > $R/agent-plain.json 2>&1
systemctl is-enabled avahi-daemon.service > $R/avahi.txt 2>&1
/opt/kioskd/bin/python -c "
from drivers.scanner.sane import SaneProcess
lib = SaneProcess(60)
lib.call('init', within=60)
print('libsane answers:', len(lib.call('devices', within=60)), 'device(s)')
lib.stop(10)" > $R/sane.txt 2>&1
grep -E '^allow-interfaces=' /etc/avahi/avahi-daemon.conf > $R/avahi-interfaces.txt 2>&1
systemctl --failed --no-legend --plain > $R/failed.txt 2>&1
journalctl -b --no-pager -o short-monotonic > $R/journal.txt 2>&1
systemctl poweroff --no-block
"""


@dataclass
class Booted:
    image: Path
    out: Path
    boot_log: str

    def text(self, name: str) -> str:
        path = self.out / name
        return path.read_text() if path.exists() else ""

    def show(self, name: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text(name).splitlines() if "=" in line)

    def context(self) -> str:
        """What to read when an assertion fails: kioskd's journal lines and the end of the boot log."""
        journal = [line for line in self.text("journal.txt").splitlines() if "kioskd" in line]
        return "\n".join(["-- journal (kioskd) --", *journal[-30:], "-- boot --", *self.boot_log.splitlines()[-30:]])


def _report(config: pytest.Config, line: str) -> None:
    """A figure on the terminal even when output is captured (the build and boot times belong in the test log)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(line, flush=True)


@pytest.fixture(scope="module")
def image(pytestconfig: pytest.Config) -> Path:
    """The sim van's image, built (or found up to date) in this checkout's slot of the image cache."""
    for tool in ("mkosi", "debootstrap", "systemd-nspawn"):
        binary(tool, f"--no-install-recommends {MKOSI_HINT}")
    slot = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]  # one image per checkout: worktrees build in parallel
    out = CACHE / "test-images" / slot / "sim-01"
    started = time.monotonic()
    result = subprocess.run(
        [*BUILD, "--out", str(out), "--cache", str(CACHE), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    verdict = "built" if summary["built"] else "up to date, reused"
    _report(pytestconfig, f"\nimage {out}: {verdict} in {time.monotonic() - started:.1f} s")
    return out


@pytest.fixture(scope="module")
def booted(image: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Booted]:
    """The image booted once with systemd-nspawn (private network, volatile overlay: the cached image stays as
    built), the test unit's findings in a host directory."""
    nspawn = binary("systemd-nspawn", f"--no-install-recommends {MKOSI_HINT}")
    work = tmp_path_factory.mktemp("image-boot")
    units, check = work / "units", work / "check"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (check / "out").mkdir(parents=True)
    (units / "kioskd-image-check.service").write_text(CHECK_UNIT)
    (units / "multi-user.target.wants/kioskd-image-check.service").symlink_to("../kioskd-image-check.service")
    (check / "check.sh").write_text(CHECK_SCRIPT)
    log = work / "boot.log"
    command = [
        nspawn, "--quiet", "--register=no", "--keep-unit", "--private-network", "--volatile=overlay",
        f"--directory={image}", f"--bind-ro={units}:/run/systemd/system", f"--bind={check}:/run/kioskd-image-check",
        "--boot",
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    booted = Booted(image, check / "out", log.read_text(errors="replace"))
    show, manager = booted.show("kioskd.show"), booted.show("manager.show")
    if show.get("ActiveEnterTimestampMonotonic", "0") != "0" and manager.get("UserspaceTimestampMonotonic"):
        ready = (int(show["ActiveEnterTimestampMonotonic"]) - int(manager["UserspaceTimestampMonotonic"])) / 1e6
        _report(pytestconfig, f"nspawn boot: kioskd READY {ready:.2f} s after systemd started; "
                f"boot to power-off {time.monotonic() - started:.1f} s")  # fmt: skip
    yield booted


def test_kioskd_service_is_active_after_ready_in_the_booted_image(booted: Booted) -> None:
    show = booted.show("kioskd.show")
    # A Type=notify unit is "active" only once the daemon sent READY=1, and StatusText is what it sent with it.
    assert show.get("ActiveState") == "active" and show.get("SubState") == "running", booted.context()
    assert show.get("Result") == "success" and show.get("NRestarts") == "0", booted.context()
    assert show.get("StatusText") == "off", booted.context()
    assert booted.text("failed.txt").strip() == "", booted.text("failed.txt")


def test_kioskctl_in_the_image_answers_with_the_sim_vans_state(booted: Booted) -> None:
    assert booted.text("status.rc").strip() == "0", booted.text("status.err") + booted.context()
    status = json.loads(booted.text("status.json"))
    assert status["vehicle"] == "sim-01"
    assert status["station"]["state"] == "off" and status["station"]["fr"] == "Station éteinte"
    assert status["power"]["available"] is True and status["modem"]["operator"] == "Orange F"


def test_the_agents_user_reaches_kioskd_with_kioskctl_from_a_login_shell(booted: Booted) -> None:
    assert booted.text("agent.rc").strip() == "0", booted.text("agent.err")
    assert json.loads(booted.text("agent.json"))["station"]["state"] == "off"


def test_kioskctl_finds_the_installed_daemon_without_a_login_shell(booted: Booted) -> None:
    # no /etc/profile.d, no KIOSKD_SOCKET: kioskctl must look at /run/kioskd/kioskd.sock by itself
    assert json.loads(booted.text("agent-plain.json"))["station"]["state"] == "off", booted.text("agent-plain.json")


def test_the_van_announces_over_mdns_on_loopback_only(booted: Booted) -> None:
    # Avahi runs (ipp-usb and sane-airscan discover the USB printer and scanner through it), on loopback only.
    assert booted.text("avahi.txt").strip() == "enabled", booted.text("avahi.txt")
    assert booted.text("avahi-interfaces.txt").strip() == "allow-interfaces=lo", booted.text("avahi-interfaces.txt")


def test_session_workspaces_are_on_tmpfs_and_private_to_kioskd(booted: Booted) -> None:
    assert booted.text("sessions.fs").strip() == "tmpfs", booted.text("sessions.fs")
    owner, mode = booted.text("sessions.stat").split()
    # 0700, or 0711 with a session app user (it traverses to its own workspace): nobody but kioskd lists sessions.
    assert owner == "kiosk" and int(mode, 8) & 0o066 == 0, booted.text("sessions.stat")


def test_kioskd_runs_in_the_groups_its_wipe_needs(booted: Booted) -> None:
    # lpadmin is CUPS's SystemGroup: the wipe purges jobs the session app printed under another uid.
    running = booted.text("kioskd.groups").strip().split(",")
    assert {"kiosk-agent", "lpadmin", "lp", "scanner", "dialout", "gpio"} <= set(running), running
    member_of = booted.text("kiosk.id")
    assert "(kiosk-agent)" in member_of and "(lpadmin)" in member_of, member_of


def test_cups_runs_with_the_hardened_configuration(booted: Booted) -> None:
    assert booted.text("cups.active").strip() == "active", booted.text("cups.active")
    assert booted.text("lpstat.txt").strip() == "scheduler is running", booted.text("lpstat.txt")
    shipped = (ROOT / "image-build/cups/cupsd-kiosk.conf").read_text()
    assert (booted.image / "etc/cups/cupsd.conf").read_text() == shipped
    assert "PreserveJobFiles No" in shipped
    assert (booted.image / "etc/cups/cups-files.conf").read_text() == (
        ROOT / "image-build/cups/cups-files-kiosk.conf"
    ).read_text()


def test_kioskd_may_power_off_and_delay_it_but_not_reboot(booted: Booted) -> None:
    verdicts = dict(line.split() for line in booted.text("polkit.txt").splitlines())
    # pkcheck: 0 authorized, 1 refused, 2 only with a password (which a van never types)
    assert verdicts["power-off"] == "0" and verdicts["inhibit-delay-shutdown"] == "0", verdicts
    assert verdicts["reboot"] in ("1", "2"), verdicts


def test_logind_waits_two_minutes_for_a_wipe_before_powering_off(booted: Booted) -> None:
    assert booted.text("logind.txt").split() == ["t", "120000000"], booted.text("logind.txt")


def test_image_carries_the_profile_units_and_a_venv_over_debians_bindings(booted: Booted) -> None:
    image = booted.image
    assert (image / "etc/kioskd/profile.toml").read_bytes() == (ROOT / "profiles/sim.toml").read_bytes()
    assert (image / "usr/lib/systemd/system/kioskd.service").read_bytes() == (
        ROOT / "systemd/kioskd.service"
    ).read_bytes()
    assert (image / "etc/systemd/system/multi-user.target.wants/kioskd.service").is_symlink()
    assert "include-system-site-packages = true" in (image / "opt/kioskd/pyvenv.cfg").read_text()
    assert not (image / "root/kioskd-wheels").exists()
    info = json.loads((image / "usr/lib/kioskd/image.json").read_text())
    assert info["vehicle"] == "sim-01" and len(info["inputs"]) == 64


def test_the_scanner_drivers_libsane_process_starts_from_the_images_venv(booted: Booted) -> None:
    # drivers/scanner/sane.py runs libsane in `python -I -m drivers.scanner.sane_child`: the installed kioskd and
    # Debian's python3-sane must both be found from the venv with the working directory and PYTHON* ignored.
    # (libsane's backends may print lines of their own first: net-snmp's "Created directory: /var/lib/snmp/…")
    answers = [
        line for line in booted.text("sane.txt").splitlines() if re.fullmatch(r"libsane answers: \d+ device\(s\)", line)
    ]
    assert answers, booted.text("sane.txt")


def test_an_unchanged_image_is_not_rebuilt(image: Path) -> None:
    result = subprocess.run(
        [*BUILD, "--out", str(image), "--cache", str(CACHE), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["built"] is False
