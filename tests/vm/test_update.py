"""A/B updates in the virtual van, on one qemu run of their own (a reboot keeps qemu and its disk overlay; a power off
stops the VM, ``system_reset`` powers it on again; a power cut kills qemu, the disk's overlay file stays): boot v1; a
session is open when v2 is given, so the install waits; the long press ends the day: wipe, v2 written, power off;
power on → v2 on root B, v1's receipts still there; v3's write to root A cut by killing qemu → power on → v2 again,
"mise à jour interrompue", no copy left; v3 (signed, but its kioskd cannot start) installed, reboot → its one try
fails the health check → the loader boots v2 again, whose kioskd shows "mise à jour refusée, retour à la version
précédente".

Five boots, no more: v1, v2 on root B, v2 after the cut, v3's failing try, v2 again. Measured under TCG
(image-build/update/README.md): boots of 1.3-2 min, a check of 1-1.5 min and an install of 3-4 min per bundle, 25-30
min of VM in all: too long for ``make test``, so ``make vm-update-test`` runs it (``make test`` and ``make vm-test``
leave it out). A new slot gets one try here (TRIES; three on a van): one failed boot proves the fallback as well as
three. The office's download by URL, the tampered bundle and the cut connection are proven outside the VM
(tests/integration/test_update_download.py, test_update_rauc.py): each would cost a RAUC check of ~1 GB under TCG.

The bundles are made by image-build/build.py (``--format update``, v3 repacked from v2 with a drop-in that breaks
kioskd.service) and brought in on an emulated USB stick, as a technician would. Figures: update size, install
time, reboot → READY on the new slot, time to roll back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm.conftest import CACHE, PROFILE, ROOT, VM_HINT, disk_path, one_van_at_a_time, report
from tests.vm.virtual_van import OVMF_CODE, VanError, VirtualVan, kvm_works

# Longer than the suite's 10 minutes per test (pyproject.toml):
# bundles, installs and four boots under TCG; each test is one long phase.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

BOOT_TIMEOUT = 900.0
V2, V3 = "2.0-vm", "3.0-vm-broken"
TRIES = 1  # the van's default is 3 (image-build/update/rauc.service); one failed boot proves the fallback
KIOSKCTL = "/opt/kioskd/bin/kioskctl"
BROKEN = "[Service]\nExecStart=\nExecStart=/bin/false\n"


def _run(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def utc() -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime())


def phase(config: pytest.Config, name: str, seconds: float, van: VirtualVan | None = None) -> None:
    """One phase's duration on the terminal with the wall clock (UTC), and in the van's marks: a failure then tells
    where the time went (bundle build, boot, RAUC's check, install, reboot → READY, rollback)."""
    if van is not None:
        van.marks[name] = seconds
    report(config, f"{utc()}  {name}: {seconds:.0f} s")


def watched(
    van: UpdateVan, config: pytest.Config, ready: Callable[[], bool], every: float = 60.0
) -> Callable[[], bool]:
    """``ready``, and every ``every`` seconds a line with the install's phase, RAUC's percent and step (or that the
    guest does not answer): a long wait shows what it waited on."""
    last = time.monotonic()

    def probe() -> bool:
        nonlocal last
        if ready():
            return True
        if time.monotonic() - last >= every:
            last = time.monotonic()
            seen = "no answer"
            with contextlib.suppress(VanError, ValueError, OSError):
                if van.is_shut_down():
                    seen = "powered off"
                else:
                    state = update_state(van)
                    seen = f"{state['phase']} {state['progress']} % {state['step']}".rstrip()
            report(config, f"{utc()}    … {seen}")
        return False

    return probe


def build_v2() -> dict[str, Any]:
    out = disk_path().with_name("virtual-van-v2.raucb")
    command = [
        sys.executable, str(ROOT / "image-build/build.py"), "--profile", str(PROFILE), "--format", "update",
        "--guest-agent", "--version", V2, "--out", str(out), "--cache", str(CACHE), "--json",
    ]  # fmt: skip
    result = _run(*command, timeout=2400)
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    summary["path"] = out
    return summary


def repack_broken(v2: Path, work: Path, keys: Path = CACHE / "test-keys", old: str = V2, new: str = V3) -> Path:
    """v3: v2's root with a drop-in that makes kioskd.service fail, a new version, signed again with the test key
    (a bad update that passes every check a bundle can pass: only the boot can tell)."""
    build_dir = work / "v3"
    shutil.rmtree(build_dir, ignore_errors=True)
    cert, key = keys / "test-signing.cert.pem", keys / "test-signing.key.pem"
    _run("rauc", f"--keyring={cert}", "extract", str(v2), str(build_dir), timeout=1200)
    dropin = work / "broken.conf"
    dropin.write_text(BROKEN)
    image = work / "image.json"
    image.write_text(json.dumps({"version": new}) + "\n")
    root = str(build_dir / "root.ext4")
    for request in (
        "mkdir /etc/systemd/system/kioskd.service.d",
        f"write {dropin} /etc/systemd/system/kioskd.service.d/broken.conf",
        "rm /usr/lib/kioskd/image.json",
        f"write {image} /usr/lib/kioskd/image.json",
    ):
        _run("debugfs", "-w", "-R", request, root)
    written = _run("debugfs", "-R", "cat /etc/systemd/system/kioskd.service.d/broken.conf", root).stdout
    assert "ExecStart=/bin/false" in written, written  # debugfs says little when a request fails
    manifest = build_dir / "manifest.raucm"
    text = manifest.read_text()
    assert f"version={old}\n" in text, text
    manifest.write_text(text.replace(f"version={old}", f"version={new}").replace(f" {old} ", f" {new} "))
    out = work / "virtual-van-v3.raucb"
    out.unlink(missing_ok=True)
    _run("rauc", "bundle", f"--cert={cert}", f"--key={key}", f"--signing-keyring={cert}",
         "--mksquashfs-args=-comp zstd -Xcompression-level 6 -processors 2", str(build_dir), str(out),
         timeout=2400)  # fmt: skip
    shutil.rmtree(build_dir)
    return out


def stick(bundles: list[Path], work: Path) -> Path:
    """An ext4 USB stick (label KIOSKUPD) holding the bundles."""
    folder = work / "stick"
    folder.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        try:
            os.link(bundle, folder / bundle.name)
        except OSError:  # another file system
            shutil.copyfile(bundle, folder / bundle.name)
    mib = sum(b.stat().st_size for b in bundles) * 11 // 10 // (1 << 20) + 64
    image = work / "stick.img"
    _run("mkfs.ext4", "-q", "-L", "KIOSKUPD", "-d", str(folder), str(image), f"{mib}M", timeout=600)
    return image


class UpdateVan(VirtualVan):
    """The virtual van with a USB stick, and powered off it stays in qemu (``-no-shutdown``) for the next morning."""

    stick: Path | None = None

    @property
    def overlay(self) -> Path:
        """The guest's writes: a qcow2 file over the built disk, kept across a power cut (not ``snapshot=on``,
        whose writes die with qemu), removed with the van."""
        return self.work / "disk-overlay.qcow2"

    def command(self) -> list[str]:
        command = super().command()
        snapshot = f"file={self.disk},format=raw,if=virtio,snapshot=on"
        command[command.index(snapshot)] = f"file={self.overlay},format=qcow2,if=virtio"
        extra = ["-no-shutdown"]
        if self.stick is not None:
            extra += [
                "-drive", f"if=none,id=stick,format=raw,snapshot=on,file={self.stick}",
                "-device", "usb-storage,bus=usb.0,drive=stick,removable=on",
            ]  # fmt: skip
        return [*command, *extra]

    def power_on(self) -> None:
        if not self.overlay.exists():
            self.work.mkdir(parents=True, exist_ok=True)
            _run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.disk), str(self.overlay))
        super().power_on()

    def power_cut(self) -> None:
        """The van's power goes: qemu is killed (SIGKILL), what the guest had not written to its disk is lost; the
        disk overlay and the firmware's NVRAM stay for ``power_on``."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        for closing in (self.cable, *self.screens, self.qmp):
            if closing is not None:
                with contextlib.suppress(OSError):
                    closing.close()
        self.cable, self.screens, self.qmp = None, [], None
        if self.agent is not None:
            self.agent.reset()
        for name in ("qmp.sock", "head0.sock", "head1.sock", "qga.sock", "vedirect.sock"):
            (self.work / name).unlink(missing_ok=True)

    def power_on_again(self) -> None:
        """The next morning: the VM that powered off is reset and runs again (same qemu, same disk overlay)."""
        assert self.qmp is not None and self.agent is not None
        self.qmp.command("system_reset")
        self.qmp.command("cont")
        self.agent.reset()

    def is_shut_down(self) -> bool:
        assert self.qmp is not None
        status = self.qmp.command("query-status")
        return bool(status.get("status") == "shutdown")


@pytest.fixture(scope="module")
def bundles(disk: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> dict[str, Any]:
    for tool in ("rauc", "mksquashfs", "debugfs"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install rauc squashfs-tools e2fsprogs")
    work = tmp_path_factory.mktemp("bundles")
    started = time.monotonic()
    v2 = build_v2()
    built_v2 = time.monotonic() - started
    phase(pytestconfig, f"bundle v2 {'built' if v2['built'] else 'up to date'}", built_v2)
    started = time.monotonic()
    v3 = repack_broken(v2["path"], work)
    phase(pytestconfig, "bundle v3 repacked from v2 (rauc extract, debugfs, rauc bundle)", time.monotonic() - started)
    started = time.monotonic()
    image = stick([v2["path"], v3], work)
    phase(pytestconfig, "stick made (mkfs.ext4 -d)", time.monotonic() - started)
    size = v2["path"].stat().st_size  # build.py's summary of an up-to-date bundle has no size nor layout
    root = v2.get("layout", {}).get("root_mib", "?")
    report(pytestconfig, f"update v2: {size / 1e6:.0f} MB signed bundle ({root} MiB ext4 root), v3 "
           f"{v3.stat().st_size / 1e6:.0f} MB; stick {image.stat().st_size / 1e6:.0f} MB")  # fmt: skip
    return {"v2": v2["path"], "v3": v3, "stick": image, "v2_bytes": size}


@pytest.fixture(scope="module")
def van(
    disk: Path, bundles: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[UpdateVan]:
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None or not OVMF_CODE.exists():
        pytest.fail(f"qemu, qemu-img or OVMF missing: apt-get install {VM_HINT}")
    machine = UpdateVan(disk, tmp_path_factory.mktemp("update-van"), "kvm" if kvm_works() else "tcg")
    machine.stick = bundles["stick"]
    with one_van_at_a_time(lambda line: report(pytestconfig, line)):  # one VM at a time on this machine
        report(pytestconfig, f"{utc()}  update van: qemu starts ({machine.accel})")
        try:
            machine.power_on()
            yield machine
        finally:
            machine.stop()
            report_marks(machine)
            machine.overlay.unlink(missing_ok=True)  # gigabytes of the guest's writes


def report_marks(van: VirtualVan) -> None:
    print("update van: " + ", ".join(f"{k} {v:.1f} s" for k, v in van.marks.items()), flush=True)


def wait_kioskd(van: UpdateVan, timeout: float, what: str) -> dict[str, Any]:
    van.wait_agent(timeout)
    return van.wait_status(lambda s: s["update"]["slot"] != "", timeout, what)


def update_state(van: UpdateVan) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(van.sh(f"{KIOSKCTL} --json update status"))
    return state


def set_tries(van: UpdateVan) -> None:
    """The technician's knob for this test: boots a new slot gets (a runtime drop-in of rauc.service)."""
    van.sh(f"mkdir -p /run/systemd/system/rauc.service.d && printf '[Service]\\nEnvironment=KIOSKD_BOOT_TRIES={TRIES}"
           "\\n' > /run/systemd/system/rauc.service.d/tries.conf && systemctl daemon-reload && "
           "systemctl try-restart rauc.service")  # fmt: skip


def notice_keys(status: dict[str, Any]) -> list[str]:
    return [n["key"] for n in status["notices"]]


def test_v1_boots_from_root_a_with_rauc_ready(van: UpdateVan, pytestconfig: pytest.Config) -> None:
    status = wait_kioskd(van, BOOT_TIMEOUT, "kioskd on v1")
    phase(pytestconfig, "power on → kioskd READY (v1, root A)", van.since_power_on(), van)
    assert status["update"]["slot"] == "a" and status["update"]["phase"] == "idle", status["update"]
    rauc = json.loads(van.sh("rauc status --output-format=json"))
    assert rauc["booted"] == "a" and rauc["compatible"] == "kioskd-x86_64", rauc
    assert van.sh("ls /efi/loader/entries").split() == ["kioskd-0001-a.conf"]
    # room for the office's download of a bundle beside kioskd's data (image-build/build.py's data_mib)
    free = int(van.sh("df -B1 --output=avail /data | tail -n 1").strip())
    assert free > 1 << 30, f"{free} bytes free on /data: no room for a downloaded bundle"
    van.sh("mkdir -p /mnt/stick && mount -o ro LABEL=KIOSKUPD /mnt/stick")
    set_tries(van)
    report(pytestconfig, f"\nv1: {status['update']['version']} on root A")


def test_an_install_given_during_a_session_waits_and_the_end_of_day_writes_it(
    van: UpdateVan, pytestconfig: pytest.Config
) -> None:
    van.sh(f"{KIOSKCTL} start")
    van.sh(f"{KIOSKCTL} next")
    session = van.wait_status(lambda s: s["station"]["state"] == "in_session", 180, "a session")["session"]
    install = f"{KIOSKCTL} --json update install /mnt/stick/virtual-van-v2.raucb --no-wait"
    checking = time.monotonic()
    answer = json.loads(van.sh(install, timeout=1800))  # answered once RAUC checked the signature: minutes
    phase(pytestconfig, "RAUC's check of v2 (signature over the whole bundle)", time.monotonic() - checking, van)
    assert answer["phase"] == "waiting" and answer["target"] == V2, answer
    time.sleep(20)
    state = update_state(van)
    assert state["phase"] == "waiting", state  # a citizen is there: nothing written
    assert van.sh("ls /efi/loader/entries").strip() == "kioskd-0001-a.conf"
    status = van.status()
    assert "update.waiting" in notice_keys(status) and status["session"]["id"] == session["id"]

    held = time.monotonic()
    van.press(hold=4.0)  # the end of the day: wipe, then the update is written, then the PC powers off

    def writing_or_off() -> bool:
        if van.is_shut_down():
            return True
        with contextlib.suppress(VanError, ValueError, OSError):
            return bool(update_state(van)["phase"] == "installing")
        return False

    van.wait_for(writing_or_off, 600, "the install after the wipe", period=2.0)
    writing = time.monotonic()
    phase(pytestconfig, "long press → the wipe done, v2 being written", writing - held, van)
    van.wait_for(watched(van, pytestconfig, van.is_shut_down), 3600, "the power off after the install", period=5.0)
    installed = time.monotonic() - writing
    phase(pytestconfig, "install of v2 (the wipe's end → power off)", installed, van)


def test_power_on_boots_v2_from_root_b_with_v1s_receipts(van: UpdateVan, pytestconfig: pytest.Config) -> None:
    on = time.monotonic()
    van.power_on_again()
    van.wait_agent(BOOT_TIMEOUT)
    phase(pytestconfig, "power on → guest agent (v2)", time.monotonic() - on)
    status = wait_kioskd(van, BOOT_TIMEOUT, "kioskd on v2")
    ready = time.monotonic() - on
    phase(pytestconfig, "power on → kioskd READY (v2, new slot B)", ready, van)
    assert status["update"]["slot"] == "b" and status["update"]["version"] == V2, status["update"]
    assert status["update"]["last"] == "applied" and "update.applied" in notice_keys(status)
    receipts = json.loads(van.sh(f"{KIOSKCTL} --json receipts"))
    assert receipts, "v1's wipe receipt is gone"
    # the health check passed and systemd-bless-boot kept the entry: no counter left
    van.wait_for(lambda: "kioskd-0002-b.conf" in van.sh("ls /efi/loader/entries").split(), 900, "the blessed entry")
    phase(pytestconfig, "power on → entry blessed (health check passed)", time.monotonic() - on, van)
    health = van.sh("systemctl show -p ActiveState,Result kioskd-update-health.service")
    assert "ActiveState=active" in health, health
    report(pytestconfig, f"\nreboot → READY on v2 (root B): {ready:.0f} s")


def test_a_power_cut_while_v3_is_written_leaves_v2_booting_and_says_so(
    van: UpdateVan, pytestconfig: pytest.Config
) -> None:
    van.sh("mkdir -p /mnt/stick && (mountpoint -q /mnt/stick || mount -o ro LABEL=KIOSKUPD /mnt/stick)")
    started = time.monotonic()
    install = f"{KIOSKCTL} --json update install /mnt/stick/virtual-van-v3.raucb --no-wait"
    answer = json.loads(van.sh(install, timeout=1800))
    phase(pytestconfig, "RAUC's check of v3 (first try)", time.monotonic() - started, van)
    assert answer["target"] == V3, answer

    def copying() -> bool:
        state = update_state(van)
        return bool(state["phase"] == "installing" and "Copying image" in state["step"])

    van.wait_for(copying, 1800, "v3 being copied to root A", period=2.0)
    time.sleep(20)  # into the 2.8 GiB copy (RAUC spends ~2 min on it here)
    assert update_state(van)["phase"] == "installing", update_state(van)
    cut = time.monotonic()
    van.power_cut()
    van.power_on()
    status = wait_kioskd(van, BOOT_TIMEOUT, "kioskd after the power cut")
    phase(pytestconfig, "power cut mid-write → power on → kioskd READY (v2, root B)", time.monotonic() - cut, van)
    update = status["update"]
    assert update["slot"] == "b" and update["version"] == V2 and update["phase"] == "idle", update
    assert update["last"] == "interrupted" and update["last_version"] == V3, update
    notice = next(n for n in status["notices"] if n["key"] == "update.interrupted")
    assert notice["fr"].startswith(f"Mise à jour {V3} interrompue"), notice
    assert van.sh("ls /efi/loader/entries").split() == ["kioskd-0002-b.conf"]  # nothing points at the torn root A
    assert json.loads(van.sh(f"{KIOSKCTL} --json receipts")), "the receipts did not survive the cut"
    left = van.sh("ls -A /var/lib/kioskd/downloads 2>/dev/null || true").split()
    assert not [n for n in left if n.endswith((".raucb", ".part"))], left  # the stick's copy is not left behind
    report(pytestconfig, f"\npower cut while v3 was written: v2 READY again {time.monotonic() - cut:.0f} s after it")


def test_v3_whose_kioskd_cannot_start_is_abandoned_and_v2_comes_back(
    van: UpdateVan, pytestconfig: pytest.Config
) -> None:
    van.sh("mkdir -p /mnt/stick && (mountpoint -q /mnt/stick || mount -o ro LABEL=KIOSKUPD /mnt/stick)")
    set_tries(van)
    started = time.monotonic()
    install = f"{KIOSKCTL} --json update install /mnt/stick/virtual-van-v3.raucb --no-wait"
    answer = json.loads(van.sh(install, timeout=1800))  # answered once RAUC checked the signature: minutes
    phase(pytestconfig, "RAUC's check of v3", time.monotonic() - started, van)
    assert answer["target"] == V3, answer
    written = watched(van, pytestconfig, lambda: update_state(van)["phase"] in ("ready", "failed"))
    van.wait_for(written, 3600, "v3 written", period=5.0)
    assert update_state(van)["phase"] == "ready", update_state(van)
    phase(pytestconfig, "install of v3 (check and write, the station off)", time.monotonic() - started, van)
    entries = van.sh("ls /efi/loader/entries").split()
    assert entries == ["kioskd-0002-b.conf", f"kioskd-0003-a+{TRIES}.conf"], entries

    rebooted = time.monotonic()
    with contextlib.suppress(VanError, ValueError, OSError):  # the agent may go down before it answers
        van.guest().sh("systemctl reboot", timeout=30)
    van.guest().reset()
    time.sleep(30)

    def back_on_v2() -> bool:
        with contextlib.suppress(VanError, ValueError, OSError):
            if van.guest().ping():
                status = van.status()
                return bool(status["update"]["slot"] == "b" and "update.rolled_back" in notice_keys(status))
        return False

    van.wait_for(back_on_v2, BOOT_TIMEOUT * (TRIES + 1), "v2 back with the rollback notice", period=10.0)
    rolled = time.monotonic() - rebooted
    phase(pytestconfig, "reboot into v3 → its failed try → v2 READY with the notice", rolled, van)
    status = van.status()
    notice = next(n for n in status["notices"] if n["key"] == "update.rolled_back")
    assert notice["fr"].startswith("Mise à jour refusée, retour à la version précédente"), notice
    assert status["update"]["version"] == V2 and status["update"]["last_version"] == V3
    assert van.serial().count("kioskd-update-health: this slot is not healthy") == TRIES, van.tail(80)
    entries = van.sh("ls /efi/loader/entries").split()
    assert entries[0] == "kioskd-0002-b.conf" and entries[1].startswith("kioskd-0003-a+0-"), entries
    report(pytestconfig, f"\nv3 rolled back after {TRIES} failed boots: {rolled:.0f} s from the reboot to v2 READY")
