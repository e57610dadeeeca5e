"""Fixtures of the virtual van: its disk (built by image-build/build.py, cached by its inputs) and one boot of it in
qemu shared by the tests of a module, stopped by PID when they end, passed or not."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.require import binary
from tests.vm.virtual_van import OVMF_CODE, VirtualVan, kvm_works, running

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KIOSKD_IMAGE_CACHE", "/var/cache/kioskd-image"))
PROFILE = ROOT / "profiles" / "virtual-van.toml"
VM_HINT = "--no-install-recommends qemu-system-x86 ovmf mtools dosfstools e2fsprogs fdisk mkosi debootstrap"


def report(config: pytest.Config, line: str) -> None:
    """A figure on the terminal even when output is captured (build and boot times belong in the test log)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(line, flush=True)


def disk_path() -> Path:
    slot = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]  # one disk per checkout: worktrees build in parallel
    return CACHE / "test-images" / slot / "virtual-van.raw"


def build_disk(force: bool = False) -> dict[str, object]:
    """The virtual van's disk, built or found up to date; build.py's JSON summary."""
    for tool in ("mkosi", "debootstrap", "mcopy", "mkfs.vfat", "sfdisk", "mkfs.ext4"):
        binary(tool, VM_HINT)
    command = [
        sys.executable, str(ROOT / "image-build/build.py"), "--profile", str(PROFILE), "--format", "disk",
        "--guest-agent", "--out", str(disk_path()), "--cache", str(CACHE), "--json", *(["--force"] if force else []),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


@pytest.fixture(scope="session")
def disk(pytestconfig: pytest.Config) -> Path:
    started = time.monotonic()
    summary = build_disk()
    verdict = "built" if summary["built"] else "up to date, reused"
    size = os.stat(disk_path()).st_blocks * 512
    report(pytestconfig, f"\nvirtual van disk {disk_path()}: {verdict} in {time.monotonic() - started:.1f} s, "
           f"{size / 1e6:.0f} MB allocated of {disk_path().stat().st_size / 1e6:.0f} MB")  # fmt: skip
    return disk_path()


@pytest.fixture(scope="module")
def van(disk: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[VirtualVan]:
    binary("qemu-system-x86_64", VM_HINT)
    if not OVMF_CODE.exists():
        pytest.fail(f"no OVMF firmware at {OVMF_CODE}: apt-get install ovmf")
    accel = "kvm" if kvm_works() else "tcg"
    work = tmp_path_factory.mktemp("van")
    with running(disk, work, accel) as machine:
        report(pytestconfig, f"virtual van: qemu pid {machine.process.pid if machine.process else '?'}, {accel}")
        yield machine
        report(pytestconfig, "virtual van: " + ", ".join(f"{k} {v:.1f} s" for k, v in machine.marks.items()))
