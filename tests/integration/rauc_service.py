"""A real RAUC service for tests: Debian's ``rauc service`` on a private D-Bus system bus, with the image's
system.conf (image-build/update/system.conf) pointed at file slots and an ESP directory in a temporary folder, and
kioskd's boot loader backend as its custom backend. Both processes are started by PID and stopped by PID.

Bundles are made with image-build/build.py's own ``assemble_update`` from a small root tree (a kernel, an
initramfs, kioskd's user and files), signed with a test key pair made here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kioskd.update.rauc import Rauc
from tests.image_stage import build_module
from tests.integration.require import binary

ROOT = Path(__file__).resolve().parents[2]
HINT = "--no-install-recommends rauc squashfs-tools dbus e2fsprogs openssl"
SLOT_MIB = 256
KERNEL = b"a test kernel " * 4096


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def esp_files(esp: Path) -> dict[str, str]:
    """Every file of the ESP and its hash: what "nothing was written" compares."""
    return {str(p.relative_to(esp)): sha256(p) for p in sorted(esp.rglob("*")) if p.is_file()}


@dataclass
class RaucVan:
    work: Path
    esp: Path
    slots: dict[str, Path]
    keys: Any  # build.Keys
    env: dict[str, str]
    compatible: str

    def client(self) -> Rauc:
        return Rauc(env=self.env, cmdline=self.work / "cmdline")

    def bundle(self, version: str, name: str | None = None, keys: Any = None, payload: int = 512 * 1024) -> Path:
        """A signed update bundle of a small root, made by build.py's assemble_update."""
        build = build_module()
        folder = self.work / f"build-{name or version}"
        tree = folder / "tree"
        for sub in ("etc/kioskd", "etc/systemd/system", "boot", "usr/lib/kioskd", "opt/kioskd"):
            (tree / sub).mkdir(parents=True)
        (tree / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nkiosk:x:990:990::/:/usr/sbin/nologin\n")
        (tree / "etc/kioskd/profile.toml").write_text("# the build machine's profile: never shipped in an update\n")
        (tree / "boot/vmlinuz-6.1.0-test").write_bytes(KERNEL + version.encode())
        (tree / "boot/initrd.img-6.1.0-test").write_bytes(b"initramfs " + version.encode())
        (tree / "usr/lib/kioskd/image.json").write_text(f'{{"version": "{version}"}}\n')
        (tree / "opt/kioskd/payload").write_bytes(os.urandom(payload))  # squashfs needs more than a block
        info = {"compatible": self.compatible, "version": version, "inputs": "f" * 64, "vehicle": "test-van",
                "built": "2026-12-01T00:00:00+0000"}  # fmt: skip
        out = folder / "update.raucb"
        build.assemble_update(tree, out, folder / "bundle", info, keys or self.keys)
        return out


@contextlib.contextmanager
def rauc_van(work: Path) -> Iterator[RaucVan]:
    for tool, package in (("rauc", "rauc"), ("mksquashfs", "squashfs-tools"), ("dbus-daemon", "dbus"),
                          ("mkfs.ext4", "e2fsprogs"), ("openssl", "openssl"), ("busctl", "systemd")):  # fmt: skip
        binary(tool, package)
    build = build_module()
    work.mkdir(parents=True, exist_ok=True)
    keys = build.test_keys(work / "cache")
    compatible = f"{build.COMPATIBLE}-x86_64"

    # the disk as build.py lays it out: root A written, root B empty, the ESP with A's kernel and first entry
    esp = work / "esp"
    (esp / "loader/entries").mkdir(parents=True)
    (esp / "loader/loader.conf").write_text("timeout 0\neditor no\n")
    (esp / "loader/entries" / build.FIRST_ENTRY).write_text(
        "title kioskd (root A)\nlinux /vmlinuz-a\ninitrd /initrd-a\n"
        f"options root=PARTLABEL=root-a rauc.slot=a {build.KERNEL_OPTIONS}\n"
    )
    (esp / "vmlinuz-a").write_bytes(KERNEL)
    (esp / "initrd-a").write_bytes(b"initramfs a")
    slots = {"a": work / "root-a.img", "b": work / "root-b.img"}
    subprocess.run(["mkfs.ext4", "-q", "-L", "root-a", str(slots["a"]), f"{SLOT_MIB}M"], check=True)
    with slots["b"].open("wb") as f:
        f.truncate(SLOT_MIB * 1024 * 1024)
    (work / "cmdline").write_text("root=PARTLABEL=root-a rauc.slot=a rw\n")

    backend = work / "rauc-bootloader"
    backend.write_text(f'#!/bin/sh\nexec {sys.executable} -m kioskd.update.bootloader "$@"\n')
    backend.chmod(0o755)
    conf = (ROOT / "image-build/update/system.conf").read_text().replace("@COMPATIBLE@", compatible)
    for old, new in (
        ("/data/rauc.status", str(work / "rauc.status")),
        ("/run/rauc", str(work / "mnt")),
        ("/etc/rauc/keyring.pem", str(keys.keyring)),
        ("/usr/lib/kioskd/rauc-bootloader", str(backend)),
        ("/dev/disk/by-partlabel/root-a", str(slots["a"])),
        ("/dev/disk/by-partlabel/root-b", str(slots["b"])),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    (work / "system.conf").write_text(conf)
    (work / "bus.conf").write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" '
        '"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>system</type><listen>unix:path={work}/bus.sock</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>'
        '<allow receive_sender="*"/></policy></busconfig>\n'
    )
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={work}/bus.sock", "KIOSKD_ESP": str(esp),
           "KIOSKD_BOOT_TRIES": "3", "PYTHONPATH": str(ROOT)}  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    try:
        bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={work}/bus.conf"], env=env)
        processes.append(bus)
        deadline = time.monotonic() + 10
        while not (work / "bus.sock").exists():
            assert time.monotonic() < deadline and bus.poll() is None, "the private D-Bus did not start"
            time.sleep(0.05)
        log = (work / "rauc-service.log").open("wb")
        service = subprocess.Popen(
            ["rauc", f"--conf={work}/system.conf", "service", "--override-boot-slot=a"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(service)
        deadline = time.monotonic() + 15
        while subprocess.run(["rauc", "status"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and service.poll() is None, (work / "rauc-service.log").read_text()
            time.sleep(0.1)
        yield RaucVan(work, esp, slots, keys, env, compatible)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
