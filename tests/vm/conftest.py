"""Fixtures of the virtual van: its disk (built by image-build/build.py, cached by its inputs) and one boot of it in
qemu shared by the tests of a module, stopped by PID when they end, passed or not."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.require import binary
from tests.vm.virtual_van import OVMF_CODE, VirtualVan, kvm_works, running

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KIOSKD_IMAGE_CACHE", "/var/cache/kioskd-image"))
PROFILE = ROOT / "profiles" / "virtual-van.toml"
VM_LOCK = Path(os.environ.get("KIOSKD_VM_LOCK", "/tmp/kioskd-vm.lock"))  # noqa: S108 (shared by every checkout)
VM_HINT = "--no-install-recommends qemu-system-x86 qemu-utils ovmf mtools dosfstools e2fsprogs fdisk mkosi debootstrap"


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


@contextlib.contextmanager
def one_van_at_a_time(say: Callable[[str], None]) -> Iterator[None]:
    """The machine-wide lock of the virtual vans: a TCG guest takes both cores of these machines, and two or three
    booting side by side (parallel checkouts) each got so little that the panel's browser stayed white for minutes
    and the screens' waits ran out. The tests and benchmarks/boot.py take it themselves (so never run them under
    ``flock`` of the same file: the inner lock would wait for the outer one)."""
    VM_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with VM_LOCK.open("a") as lock:
        started = time.monotonic()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"virtual van: waiting for {VM_LOCK} (another van boots on this machine)")
            fcntl.flock(lock, fcntl.LOCK_EX)
            say(f"virtual van: lock taken after {time.monotonic() - started:.0f} s")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def van(disk: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[VirtualVan]:
    binary("qemu-system-x86_64", VM_HINT)
    if not OVMF_CODE.exists():
        pytest.fail(f"no OVMF firmware at {OVMF_CODE}: apt-get install ovmf")
    accel = "kvm" if kvm_works() else "tcg"
    work = tmp_path_factory.mktemp("van")
    with one_van_at_a_time(lambda line: report(pytestconfig, line)), running(disk, work, accel) as machine:
        report(pytestconfig, f"virtual van: qemu pid {machine.process.pid if machine.process else '?'}, {accel}")
        yield machine
        report(pytestconfig, "virtual van: " + ", ".join(f"{k} {v:.1f} s" for k, v in machine.marks.items()))
