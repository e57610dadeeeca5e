"""The virtual van's update test (tests/vm/test_update.py) without booting it: the module imports, its qemu command
keeps the powered-off VM and brings the stick, its stick holds the bundles, and its knobs are what the docstring
promises (one try, five boots: a power cut's among them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.require import binary
from tests.vm import test_update
from tests.vm.virtual_van import VirtualVan


def test_the_update_van_stays_in_qemu_when_powered_off_and_brings_its_stick(tmp_path: Path) -> None:
    van = test_update.UpdateVan(tmp_path / "disk.raw", tmp_path / "work")
    van.stick = tmp_path / "stick.img"
    command, base = van.command(), VirtualVan.command(van)
    # the virtual van, its disk under a qcow2 overlay that outlives qemu (a power cut keeps the guest's writes)
    (disk,) = [i for i, (a, b) in enumerate(zip(command, base, strict=False)) if a != b]
    assert base[disk].endswith("snapshot=on") and command[disk] == f"file={van.overlay},format=qcow2,if=virtio"
    assert command[: len(base)] == [*base[:disk], command[disk], *base[disk + 1 :]]  # plus:
    extra = command[len(base) :]
    assert "-no-shutdown" in extra  # a power off leaves qemu for system_reset (the next morning)
    drive = extra[extra.index("-drive") + 1]
    assert f"file={van.stick}" in drive and "snapshot=on" in drive  # the stick as built, whatever the guest does
    assert any(a.startswith("usb-storage,") and "drive=stick" in a for a in extra)
    van.stick = None
    assert "usb-storage" not in " ".join(van.command())


def test_the_stick_is_an_ext4_labelled_kioskupd_holding_every_bundle(tmp_path: Path) -> None:
    binary("debugfs", "e2fsprogs")
    bundles = []
    for name in ("virtual-van-v2.raucb", "virtual-van-v3.raucb"):
        bundles.append(tmp_path / name)
        bundles[-1].write_bytes(name.encode() * 1000)
    image = test_update.stick(bundles, tmp_path / "work")
    label = subprocess.run(["e2label", str(image)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == "KIOSKUPD"
    listing = subprocess.run(["debugfs", "-R", "ls -l /", str(image)], capture_output=True, text=True).stdout
    for bundle in bundles:
        assert bundle.name in listing and str(bundle.stat().st_size) in listing


def test_one_try_and_the_broken_kioskd_drop_in() -> None:
    assert test_update.TRIES == 1
    assert "ExecStart=\nExecStart=/bin/false" in test_update.BROKEN  # clears kioskd's ExecStart, then fails
    assert test_update.V2 != test_update.V3
    status = {"notices": [{"key": "update.applied"}, {"key": "update.rolled_back"}]}
    assert test_update.notice_keys(status) == ["update.applied", "update.rolled_back"]
