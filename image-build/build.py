"""Builds the van's Debian 12 image with mkosi for one vehicle profile: ``make image PROFILE=profiles/<van>.toml``.

It brings kioskd as wheels built on this machine (the image's venv installs them offline), the profile, the units
and the hardened CUPS and logind configuration; mkosi's package cache and incremental cache make the second build
fast, and an image whose inputs did not change is not rebuilt at all."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CACHE = Path(os.environ.get("KIOSKD_IMAGE_CACHE", "/var/cache/kioskd-image"))
# The compiled bindings come from Debian (python3-cups, python3-sane, python3-systemd, see mkosi.conf): the image's
# venv sees them through --system-site-packages and pip counts them as installed, so they are not fetched here.
DEBIAN_BINDINGS = {"pycups", "python-sane", "systemd-python"}
# Debian packages a profile's backends need on top of mkosi.conf's, by driver name (``[devices.*] driver = …``).
DRIVER_PACKAGES = {"nut": ["nut-client"], "upower": ["upower"], "evdev": ["python3-evdev"]}
# The citizen's USB sticks ([media] driver "fuse", the default; issue 22): parsed by FUSE drivers, never the kernel.
MEDIA_PACKAGES = ["fuse3", "fusefat", "exfat-fuse", "ntfs-3g"]
# The session app: Chromium and the smallest X server that shows it on the van's two screens.
CHROMIUM_PACKAGES = ["chromium", "xserver-xorg-core", "xserver-xorg-input-libinput", "xinit", "x11-xserver-utils"]
# The station's screens (an X session of their own, see README.md): Xorg with modesetting (in xserver-xorg-core),
# xauth for the session app's cookie, xrandr and xset, the panel's browser, a font with French accents,
# and pam_systemd: the X session's unit opens a logind session, which hands the rootless Xorg its devices.
DESKTOP_PACKAGES = [
    "xserver-xorg-core", "xserver-xorg-input-libinput", "xauth", "x11-xserver-utils", "chromium", "fonts-dejavu-core",
    "libpam-systemd", "xserver-xephyr",
]  # fmt: skip
# The sound server for kioskd's audio backend and the session app: PulseAudio, system-wide (README.md says why).
AUDIO_PACKAGES = {"pulse": ["pulseaudio"]}
# What makes a disk boot on a UEFI PC: the kernel, its initramfs and systemd-boot (the disk is assembled by
# assemble_disk below, not by mkosi's Bootable=, which needs to mount a vfat file system).
# e2fsprogs: fsck of root and data after a power cut (a van's battery can die); zstd: the initramfs compressor.
BOOT_PACKAGES = ["linux-image-amd64", "initramfs-tools", "systemd-boot", "e2fsprogs", "zstd", "rauc", "squashfs-tools"]
# rauc: the A/B updates' engine on the van (update/README.md); its service, D-Bus policy, system.conf and kioskd's
# boot loader backend come from update/. squashfs-tools: RAUC 1.8 reads a plain bundle's manifest with unsquashfs
# (its Info, kioskd's check before the install, fails without it: seen in the virtual van).
# Only for the virtual van: the QEMU guest agent runs only when its virtio port exists (never on a van's PC).
GUEST_AGENT_PACKAGES = ["qemu-guest-agent"]
# What the image is made of: a change to any of these files rebuilds it.
INPUT_PATHS = ["pyproject.toml", "kioskd", "drivers", "systemd", "image-build"]
FORMATS = {"directory": "directory", "disk": "disk", "update": "update"}
BOOTABLE = ("disk", "update")  # an update is the root of a disk: the same packages, kernel and layout
TOOLS = {"mkosi": "mkosi", "debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}
DISK_TOOLS = {"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mkfs.ext4": "e2fsprogs", "sfdisk": "fdisk"}
UPDATE_TOOLS = {"mkfs.ext4": "e2fsprogs", "rauc": "rauc", "mksquashfs": "squashfs-tools", "openssl": "openssl"}
STEPS = 6
# issue 20 (power): upsd + the NUT driver for a UPS on this PC, UPower's critical action (image-build/power/)
sys.path.insert(0, str(HERE / "power"))
import power_image  # noqa: E402


class BuildError(Exception):
    """A build that cannot go on; the message says what to do."""


class Progress:
    """``[n/6] what`` lines with the time since the build started (mkosi prints its own steps in between)."""

    def __init__(self, steps: int = STEPS) -> None:
        self.start = time.monotonic()
        self.n = 0
        self.steps = steps

    def step(self, what: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{self.steps}] {what}  (+{self.elapsed():.0f} s)", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def input_files() -> list[Path]:
    """The project files the image is built from (tracked or new, not ignored, caches and bytecode left out)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *INPUT_PATHS],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = sorted({name for name in listed.split("\0") if name})
    except (OSError, subprocess.CalledProcessError):  # a source tarball: no git
        names = sorted(
            str(path.relative_to(ROOT))
            for top in INPUT_PATHS
            for path in ([ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*"))
            if path.is_file()
        )
    return [ROOT / name for name in names if "__pycache__" not in name and (ROOT / name).is_file()]


def profile_packages(profile: dict[str, Any]) -> list[str]:
    """Debian packages this vehicle's backends and session app need beyond mkosi.conf's."""
    drivers: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("driver"), str):
                drivers.add(node["driver"])
            for value in node.values():
                walk(value)

    walk(profile.get("devices", {}))
    walk(profile.get("host", {}))
    packages = {package for driver in drivers for package in DRIVER_PACKAGES.get(driver, [])}
    packages.update(power_image.packages(profile))  # issue 20: nut-server when the UPS is here
    if profile.get("media", {}).get("driver", "fuse") == "fuse":  # issue 22: the citizen's sticks through FUSE
        packages.update(MEDIA_PACKAGES)
    app = profile.get("station", {}).get("app", [])
    if app and any(Path(part).name in ("chromium", "chromium-browser") for part in app[:2]):
        packages.update(CHROMIUM_PACKAGES)
    if profile.get("devices", {}).get("displays", {}).get("driver") == "xrandr":
        packages.update(DESKTOP_PACKAGES)
    packages.update(AUDIO_PACKAGES.get(profile.get("devices", {}).get("audio", {}).get("driver", ""), []))
    return sorted(packages)


def read_profile(path: Path) -> dict[str, Any]:
    """The profile as TOML, after kioskd itself validated it (the same message as the daemon would give)."""
    sys.path.insert(0, str(ROOT))
    try:
        from kioskd.errors import KioskError
        from kioskd.profile import load_profile
    except ImportError as exc:
        raise BuildError(f"cannot import kioskd to check the profile ({exc}): run `make .venv/.installed`") from None
    try:
        load_profile(path)
    except KioskError as exc:
        raise BuildError(f"the profile is not valid: {exc}") from None
    with path.open("rb") as f:
        return tomllib.load(f)


def check_tools(fmt: str = "directory") -> None:
    tools = {**TOOLS, **(DISK_TOOLS if fmt == "disk" else {}), **(UPDATE_TOOLS if fmt == "update" else {})}
    missing = [package for tool, package in tools.items() if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"missing build tools: run `apt-get install --no-install-recommends {' '.join(missing)}`")
    if os.geteuid() != 0:
        raise BuildError("mkosi needs root: run `sudo make image …`")


def requirements() -> list[str]:
    """kioskd's dependencies from pyproject.toml, without the bindings Debian provides."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        deps: list[str] = tomllib.load(f)["project"]["dependencies"]
    return [dep for dep in deps if re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() not in DEBIAN_BINDINGS]


def constraints() -> str:
    """The versions installed in the development venv, so the image runs what the tests ran (when run from it)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=False
    ).stdout
    return "".join(line + "\n" for line in frozen.splitlines() if "==" in line and " @ " not in line)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def dependency_wheels(cache: Path, arch: str) -> Path:
    """Wheels of kioskd's dependencies for the image's Python (cp311, manylinux, ``arch``), downloaded once per
    set of requirements and versions: binary wheels only, so nothing is compiled and another arch can be fetched."""
    reqs, pins = requirements(), constraints()
    key = _sha256("\n".join(reqs).encode(), pins.encode(), arch.encode())[:16]
    wheels = cache / "wheels" / key
    if (wheels / ".complete").exists():
        print(f"dependency wheels: cached ({wheels})", flush=True)
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    (wheels / "constraints.txt").write_text(pins)
    platforms = [f"manylinux{tag}_{arch}" for tag in ("2014", "_2_17", "_2_27", "_2_28", "_2_34", "_2_36")]
    pip(
        "download", "--quiet", "--dest", str(wheels), "--only-binary=:all:", "--python-version", "3.11",
        "--implementation", "cp", "--abi", "cp311", *(f"--platform={p}" for p in platforms),
        "--constraint", str(wheels / "constraints.txt"), *reqs,
    )  # fmt: skip
    (wheels / ".complete").touch()
    return wheels


def stage_tree(
    tree: Path, profile_path: Path, wheels: Path, kioskd_wheel: Path, info: dict[str, Any], keys: Keys | None = None
) -> None:
    """The files mkosi copies over the installed packages (its ExtraTree), at their places in the image."""

    def put(src: Path, dest: str, mode: int = 0o644) -> None:
        target = tree / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        target.chmod(mode)

    systemd = ROOT / "systemd"
    put(systemd / "kioskd.service", "/usr/lib/systemd/system/kioskd.service")
    put(systemd / "kioskd.sysusers", "/usr/lib/sysusers.d/kioskd.conf")
    put(systemd / "kioskd.tmpfiles", "/usr/lib/tmpfiles.d/kioskd.conf")
    put(systemd / "70-kioskd.rules", "/usr/lib/udev/rules.d/70-kioskd.rules")
    # issue 22: FUSE loaded at boot (kioskd.service may not load a module) for the citizen's stick's driver
    put(HERE / "media" / "modules-load-kioskd-media.conf", "/usr/lib/modules-load.d/kioskd-media.conf")
    put(HERE / "media" / "71-kioskd-media.rules", "/usr/lib/udev/rules.d/71-kioskd-media.rules")  # kiosk-media
    put(HERE / "kioskd-image.sysusers", "/usr/lib/sysusers.d/kioskd-image.conf")
    put(HERE / "cups" / "cupsd-kiosk.conf", "/etc/cups/cupsd.conf")
    put(HERE / "cups" / "cups-files-kiosk.conf", "/etc/cups/cups-files.conf")
    # Driverless USB printers and scanners: ipp-usb and Avahi, on loopback only (the printer queue: kioskd makes it).
    put(HERE / "ipp-usb" / "ipp-usb.conf", "/etc/ipp-usb/ipp-usb.conf")
    put(HERE / "avahi" / "avahi-daemon.conf", "/etc/avahi/avahi-daemon.conf")
    put(HERE / "logind-kioskd.conf", "/etc/systemd/logind.conf.d/kioskd.conf")
    put(HERE / "polkit-kioskd.rules", "/etc/polkit-1/rules.d/50-kioskd.rules")
    put(HERE / "polkit-kioskd-network.rules", "/etc/polkit-1/rules.d/51-kioskd-network.rules")  # issue 21
    put(HERE / "profile-kioskd.sh", "/etc/profile.d/kioskd.sh")
    station = HERE / "station"  # the station's screens and sound (enabled by mkosi.postinst when installed)
    put(station / "kioskd-desktop.service", "/usr/lib/systemd/system/kioskd-desktop.service")
    put(station / "station-desktop", "/usr/lib/kioskd/station-desktop", 0o755)
    put(station / "session-x", "/usr/lib/kioskd/session-x", 0o755)
    put(station / "xorg-kioskd.conf", "/etc/X11/xorg.conf.d/10-kioskd.conf")
    put(station / "kioskd-x.tmpfiles", "/usr/lib/tmpfiles.d/kioskd-x.conf")
    put(station / "pulseaudio-system.service", "/usr/lib/systemd/system/pulseaudio-system.service")
    put(station / "kioskd-system.pa", "/etc/pulse/kioskd-system.pa")
    put(profile_path, "/etc/kioskd/profile.toml")
    put(ROOT / "README.md", "/usr/share/doc/kioskd/README.md")
    for wheel in [*wheels.glob("*.whl"), kioskd_wheel]:
        put(wheel, f"/root/kioskd-wheels/{wheel.name}")
    power_image.stage(tree, tomllib.loads(profile_path.read_text()))  # issue 20: /etc/nut, /etc/UPower
    if keys is not None:  # a bootable root: RAUC's slots, kioskd's boot loader backend and the boot's health check
        update = HERE / "update"
        conf = (update / "system.conf").read_text().replace("@COMPATIBLE@", str(info["compatible"]))
        (tree / "etc/rauc").mkdir(parents=True, exist_ok=True)
        (tree / "etc/rauc/system.conf").write_text(conf)
        put(keys.keyring, "/etc/rauc/keyring.pem")
        put(update / "rauc.service", "/usr/lib/systemd/system/rauc.service")
        put(update / "de.pengutronix.rauc.conf", "/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf")
        put(update / "de.pengutronix.rauc.service", "/usr/share/dbus-1/system-services/de.pengutronix.rauc.service")
        put(update / "kioskd-update-health.service", "/usr/lib/systemd/system/kioskd-update-health.service")
        put(update / "rauc-bootloader", "/usr/lib/kioskd/rauc-bootloader", 0o755)
    info_file = tree / "usr/lib/kioskd/image.json"
    info_file.parent.mkdir(parents=True, exist_ok=True)
    info_file.write_text(json.dumps(info, indent=2) + "\n")


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (mkosi's package and incremental caches are shared between builds)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another image build using {cache} …", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _replace(new: Path, out: Path) -> None:
    """Put the freshly built ``new`` at ``out`` (same file system: a rename), the previous image removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    try:
        new.rename(out)
    except OSError:  # another file system
        subprocess.run(["cp", "-a", "--reflink=auto", str(new), str(out)], check=True)
        subprocess.run(["rm", "-rf", str(new)], check=True)


def build(
    profile_path: Path,
    out: Path,
    cache: Path,
    fmt: str,
    hostname: str | None,
    arch: str,
    force: bool,
    guest_agent: bool = False,
    version: str | None = None,
    keys: Keys | None = None,
) -> dict[str, Any]:
    progress = Progress(STEPS + (1 if fmt in BOOTABLE else 0))
    progress.step(f"checking the tools and the profile {profile_path}")
    check_tools(fmt)
    profile = read_profile(profile_path)
    hostname = hostname or str(profile["vehicle"]["id"])
    packages = profile_packages(profile)
    if fmt in BOOTABLE:
        if arch != "x86_64":
            raise BuildError("a bootable disk is built for x86_64 UEFI PCs only (the Pi boots another way)")
        keys = keys or test_keys(cache)
        packages = sorted({*packages, *BOOT_PACKAGES})
    if guest_agent:
        packages = sorted({*packages, *GUEST_AGENT_PACKAGES})
    mkosi_version = subprocess.run(["mkosi", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    files = input_files()
    inputs = _sha256(
        *(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() for path in files),
        profile_path.read_bytes(),
        json.dumps([fmt, hostname, arch, packages, mkosi_version]).encode(),
        constraints().encode(),
        keys.keyring.read_bytes() if keys else b"",
    )
    version = version or default_version()
    stamp = out.with_name(out.name + ".inputs")
    if fmt == "update":  # the version is inside the signed manifest: another version is another bundle
        inputs = _sha256(inputs.encode(), version.encode())
    if not force and out.exists() and stamp.exists() and stamp.read_text().strip() == inputs:
        print(f"image up to date (inputs {inputs[:12]}): {out}", flush=True)
        return {"out": str(out), "inputs": inputs, "built": False, "seconds": progress.elapsed()}

    with locked(cache), tempfile.TemporaryDirectory(prefix="kioskd-image-", dir=cache) as tmp:
        progress.step("wheels: kioskd and its dependencies for the image's python3.11")
        wheels = dependency_wheels(cache, arch)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(ROOT))
        (kioskd_wheel,) = Path(tmp).glob("kioskd-*.whl")

        progress.step("staging the extra tree: units, profile, CUPS and logind configuration, the station's screens")
        info = {
            "vehicle": profile["vehicle"]["id"],
            "profile": profile_path.name,
            "inputs": inputs,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "extra_packages": packages,
            "format": fmt,
            "version": version,
            "compatible": f"{COMPATIBLE}-{arch}",
        }
        tree = Path(tmp) / "tree"
        stage_tree(tree, profile_path, wheels, kioskd_wheel, info, keys if fmt in BOOTABLE else None)

        progress.step(f"mkosi: Debian 12 {arch}, {fmt}, {len(packages)} package(s) from the profile")
        # The incremental cache holds the image with its packages installed: keyed by what decides them.
        key = _sha256((HERE / "mkosi.conf").read_bytes(), json.dumps(["directory", arch, packages]).encode())[:16]
        mkosi_dir = cache / "mkosi"
        image_id = f"kioskd-{key}"
        # mkosi puts its outputs and incremental caches under <output dir>/<distribution>~<release>.
        made = mkosi_dir / "debian~bookworm"
        made.mkdir(parents=True, exist_ok=True)
        # mkosi 14 without a build script never writes the "pre-dev" cache but requires it before it reuses the
        # "pre-inst" one, so it would rebuild the cache every time: an empty stand-in makes the cache work.
        pre_dev = made / f"{image_id}.cache-pre-dev"
        if (made / f"{image_id}.cache-pre-inst").exists() and not pre_dev.exists():
            pre_dev.mkdir()
        built = made / image_id
        for stale in (built, built.with_name(built.name + ".manifest")):
            subprocess.run(["rm", "-rf", str(stale)], check=True)
        command = [
            "mkosi", "--nspawn-keep-unit", "--incremental", "--format=directory", f"--architecture={arch}",
            f"--image-id={image_id}", f"--output-dir={mkosi_dir}", f"--output={built.name}",
            f"--cache={cache / 'apt'}", f"--workspace-dir={mkosi_dir}", f"--hostname={hostname}",
            f"--extra-tree={tree}", f"--postinst-script={HERE / 'mkosi.postinst'}",
            *(f"--package={package}" for package in packages),
            "build",
        ]  # fmt: skip
        print("$ " + " ".join(command), flush=True)
        result = subprocess.run(command, cwd=HERE, check=False)
        if result.returncode != 0:
            raise BuildError(f"mkosi failed (exit {result.returncode}); its output above says where")
        if not pre_dev.exists():
            pre_dev.mkdir()

        layout: dict[str, Any] = {}
        if fmt == "disk":
            progress.step("the disk: ESP with systemd-boot, kernel and initramfs; root A, root B, data (no mount)")
            disk = Path(tmp) / "disk.raw"
            layout = assemble_disk(built, disk, Path(tmp) / "parts")
            subprocess.run(["rm", "-rf", str(built)], check=True)
            built = disk
        elif fmt == "update":
            progress.step("the update: root file system, RAUC manifest and hook, signed bundle")
            assert keys is not None
            bundle = Path(tmp) / "update.raucb"
            layout = assemble_update(built, bundle, Path(tmp) / "bundle", info, keys)
            subprocess.run(["rm", "-rf", str(built)], check=True)
            built = bundle

        progress.step(f"installing the image at {out}")
        stamp.unlink(missing_ok=True)
        _replace(built, out)
        manifest = made / f"{image_id}.manifest"
        if manifest.exists():
            _replace(manifest, out.with_name(out.name + ".manifest"))
        stamp.write_text(inputs + "\n")

    progress.step("done")
    size = _size(out)
    kind = {"directory": "directory", "disk": "raw disk, allocated", "update": "signed RAUC bundle"}[fmt]
    print(f"image: {out} ({kind} {size / 1e6:.0f} MB), built in {progress.elapsed():.0f} s", flush=True)
    if fmt == "directory":
        print(f"boot it: systemd-nspawn --register=no --keep-unit -b -D {out}", flush=True)
    elif fmt == "update":
        signer = keys.cert if keys else "?"
        print(f"version {version}; on the van: kioskctl update install {out.name} (signed by {signer})", flush=True)
    else:
        print(f"write it: dd if={out} of=/dev/sdX bs=4M conv=fsync status=progress", flush=True)
    return {
        "out": str(out), "inputs": inputs, "built": True, "seconds": progress.elapsed(), "bytes": size,
        "layout": layout, "version": version,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------- the disk
MiB = 1024 * 1024
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"  # the Discoverable Partitions root type for x86-64
LINUX_DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # not auto-mounted by systemd-gpt-auto: fstab mounts it
ESP_MIB = 256
DATA_MIB = 512  # the store, receipts, figures, the outbox, the profile
# The data partition holds what must survive a root update; the two directories kioskd owns are bind-mounted
# from it (fstab), so the root partition can later be replaced (or made read-only) without losing them.
DATA_MOUNT = "/data"
DATA_DIRS = {"etc": "/etc/kioskd", "state": "/var/lib/kioskd"}
ESP_MOUNT = "/efi"


def data_mib(root_mib: int) -> int:
    """The data partition's size: DATA_MIB for what kioskd keeps, plus room for one update bundle the office sends
    by URL (kioskd/update/download.py: Debian 12's rauc 1.8 cannot stream one, so it is downloaded whole first).
    A bundle is the root's ext4 image in a zstd squashfs, 30 % of it for the van's root (833 MB of 2818 MiB): half
    the root partition leaves room for a root that compresses worse or grows."""
    return DATA_MIB + (root_mib // 2 + 255) // 256 * 256


COMPATIBLE = "kioskd"  # RAUC's compatible: kioskd-<arch>, the same for every van (the profile is on the data side)
# systemd-boot entries are kioskd-<generation>-<slot>.conf: the boot loader backend (kioskd/update/bootloader.py)
# writes the next generations; the highest generation with tries left boots (no `default` in loader.conf).
FIRST_ENTRY = "kioskd-0001-a.conf"
KERNEL_OPTIONS = "rw console=tty1 console=ttyS0,115200 systemd.show_status=yes loglevel=4"
FSTAB = f"""# The van's disk (image-build/build.py): root A is mounted by the kernel (root=PARTLABEL=root-a); the data
# partition carries kioskd's configuration and state across root updates (README.md, "The disk").
PARTLABEL=kioskd-data {DATA_MOUNT} ext4 defaults,noatime,x-systemd.device-timeout=3min 0 2
{DATA_MOUNT}/etc /etc/kioskd none bind,x-systemd.requires-mounts-for={DATA_MOUNT} 0 0
{DATA_MOUNT}/state /var/lib/kioskd none bind,x-systemd.requires-mounts-for={DATA_MOUNT} 0 0
# the ESP, for RAUC's boot loader backend (its entries) and the update hook (each slot's kernel)
PARTLABEL=esp {ESP_MOUNT} vfat umask=0077,noatime,x-systemd.device-timeout=3min 0 2
"""


def _run(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **kwargs)


def _ids(tree: Path, user: str) -> tuple[int, int]:
    for line in (tree / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise BuildError(f"the image has no user {user!r} (systemd/kioskd.sysusers should create it)")


def prepare_root(tree: Path, data: Path) -> str:
    """mkosi's tree made a disk's root (the same for a disk and for an update): an initramfs for its kernel, the
    mount points of the data partition and the ESP, the fstab; kioskd's configuration moves to ``data`` (an update
    throws it away: the van keeps its own profile). The kernel's version."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BuildError("the image has no kernel in /boot (linux-image-amd64 missing from the packages?)")
    version = kernels[-1]
    initrd = tree / "boot" / f"initrd.img-{version}"
    if not initrd.exists():  # mkosi's directory build keeps the kernel's hooks from making one
        _run("chroot", str(tree), "update-initramfs", "-c", "-k", version, stdout=subprocess.DEVNULL)
    kiosk_uid, kiosk_gid = _ids(tree, "kiosk")
    (data / "state").mkdir(parents=True)
    os.chown(data / "state", kiosk_uid, kiosk_gid)
    (data / "state").chmod(0o700)
    shutil.move(str(tree / "etc/kioskd"), str(data / "etc"))
    (tree / "etc/kioskd").mkdir(mode=0o755)
    for mount_point in (DATA_MOUNT, "/var/lib/kioskd", ESP_MOUNT):
        (tree / mount_point.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (tree / "etc/fstab").write_text(FSTAB)
    return version


def assemble_disk(tree: Path, disk: Path, work: Path) -> dict[str, Any]:
    """A GPT disk from mkosi's directory tree, mounting nothing (this build machine's kernel may lack vfat, and
    loop devices are not always there): the ESP made by mtools, the root and data file systems by ``mkfs.ext4 -d``,
    laid into a sparse file partitioned by sfdisk. Root B is left empty for the first update."""
    work.mkdir(parents=True, exist_ok=True)
    boot_efi = tree / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    if not boot_efi.exists():
        raise BuildError("the image has no systemd-boot (the systemd-boot package)")
    # The data partition: kioskd's configuration and state move there, the root keeps empty mount points.
    data = work / "data"
    version = prepare_root(tree, data)
    initrd = tree / "boot" / f"initrd.img-{version}"

    # The ESP: systemd-boot as the removable-media loader (no NVRAM entry needed), one entry for root A.
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    esp = work / "esp.img"
    _run("mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(esp), str(ESP_MIB * 1024), stdout=subprocess.DEVNULL)
    image = ["-i", str(esp)]
    _run("mmd", *image, "::/EFI", "::/EFI/BOOT", "::/EFI/systemd", "::/loader", "::/loader/entries", env=env)
    _run("mcopy", *image, str(boot_efi), "::/EFI/BOOT/BOOTX64.EFI", env=env)
    _run("mcopy", *image, str(boot_efi), "::/EFI/systemd/systemd-bootx64.efi", env=env)
    _run("mcopy", *image, str(tree / "boot" / f"vmlinuz-{version}"), "::/vmlinuz-a", env=env)
    _run("mcopy", *image, str(initrd), "::/initrd-a", env=env)
    # no `default`: systemd-boot boots the first entry in its order (bad ones last), which is how a slot that
    # used up its tries is passed over (kioskd/update/bootloader.py)
    (work / "loader.conf").write_text("timeout 0\neditor no\n")
    (work / FIRST_ENTRY).write_text(
        f"title kioskd (root A, {version})\nlinux /vmlinuz-a\ninitrd /initrd-a\n"
        f"options root=PARTLABEL=root-a rauc.slot=a {KERNEL_OPTIONS}\n"
    )
    _run("mcopy", *image, str(work / "loader.conf"), "::/loader/loader.conf", env=env)
    _run("mcopy", *image, str(work / FIRST_ENTRY), f"::/loader/entries/{FIRST_ENTRY}", env=env)

    # Root A: the tree with room to spare (a technician's apt-get, logs); root B the same size, empty.
    used = int(_run("du", "-s", "--block-size=1M", str(tree), capture_output=True).stdout.split()[0])
    root_mib = (int(used * 1.3) + 512 + 255) // 256 * 256
    root = work / "root.img"
    _run("mkfs.ext4", "-q", "-L", "root-a", "-d", str(tree), str(root), f"{root_mib}M")
    data_img = work / "data.img"
    data_size = data_mib(root_mib)
    _run("mkfs.ext4", "-q", "-L", "kioskd-data", "-d", str(data), str(data_img), f"{data_size}M")

    sizes = {"esp": ESP_MIB, "root-a": root_mib, "root-b": root_mib, "kioskd-data": data_size}
    types = {"esp": ESP_TYPE, "root-a": ROOT_X86_64_TYPE, "root-b": ROOT_X86_64_TYPE, "kioskd-data": LINUX_DATA_TYPE}
    total = 1 + sum(sizes.values()) + 1  # 1 MiB before the first partition and room for the backup GPT after
    disk.unlink(missing_ok=True)
    with disk.open("wb") as f:
        f.truncate(total * MiB)
    script = "label: gpt\n" + "".join(
        f'{"start=2048, " if name == "esp" else ""}size={size * 2048}, type={types[name]}, name="{name}"\n'
        for name, size in sizes.items()
    )
    _run("sfdisk", "--quiet", str(disk), input=script)
    table = json.loads(_run("sfdisk", "--json", str(disk), capture_output=True).stdout)["partitiontable"]
    starts = {part["name"]: int(part["start"]) for part in table["partitions"]}
    for name, part in (("esp", esp), ("root-a", root), ("kioskd-data", data_img)):
        _run("dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={starts[name] * 512 // MiB}",
             "conv=notrunc,sparse", "status=none")  # fmt: skip
    return {"kernel": version, "partitions": {name: {"start": starts[name], "mib": sizes[name]} for name in sizes}}


# --------------------------------------------------------------------------------------------------- the update
@dataclass(frozen=True)
class Keys:
    """Who signs updates and whom the van trusts: ``key``/``cert`` sign the bundle (files, or PKCS#11 URLs of a
    token: RAUC takes both), ``keyring`` (the CA's certificate) goes into every root as /etc/rauc/keyring.pem."""

    key: str
    cert: str
    keyring: Path


def test_keys(cache: Path) -> Keys:
    """A self-signed test key pair, made once per cache and never committed: tests and the virtual van sign with it.
    A van in service needs the workshop's own (``--signing-key/--signing-cert/--keyring``, README.md)."""
    folder = cache / "test-keys"
    key, cert = folder / "test-signing.key.pem", folder / "test-signing.cert.pem"
    if not (key.exists() and cert.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        print(f"update signing: no key given, making a TEST key pair in {folder} (not for vans in service)")
        _run(
            "openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "3650", "-keyout", str(key),
            "-out", str(cert), "-subj", "/O=kioskd/CN=kioskd TEST update signing key (not for service)",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        key.chmod(0o600)
    return Keys(str(key), str(cert), cert)


def default_version() -> str:
    """kioskd's version and the build's date and time: versions sort in the order they were built."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = str(tomllib.load(f)["project"]["version"])
    return f"{project}+{time.strftime('%Y%m%d.%H%M%S')}"


MANIFEST = """[update]
compatible={compatible}
version={version}
build={build}
description=kioskd root {version} (image-build/build.py, vehicle {vehicle}, built {built})

[bundle]
format=plain

[hooks]
filename=hook.sh

[image.rootfs]
filename=root.ext4
hooks=post-install
"""


def assemble_update(tree: Path, bundle: Path, work: Path, info: dict[str, Any], keys: Keys) -> dict[str, Any]:
    """A signed RAUC bundle of the root: the same root as a disk's (``prepare_root``) as an ext4 image just big
    enough (RAUC grows it to the slot: ``resize=true``), the manifest with the version and the inputs' hash, and
    the hook that copies the slot's kernel to the ESP. Nothing is mounted here either."""
    work.mkdir(parents=True, exist_ok=True)
    kernel = prepare_root(tree, work / "data-unused")
    subprocess.run(["rm", "-rf", str(work / "data-unused")], check=True)
    used = int(_run("du", "-s", "--block-size=1M", str(tree), capture_output=True).stdout.split()[0])
    root_mib = int(used * 1.12) + 128
    content = work / "content"
    content.mkdir()
    _run("mkfs.ext4", "-q", "-L", "kioskd-root", "-d", str(tree), str(content / "root.ext4"), f"{root_mib}M")
    shutil.copyfile(HERE / "update" / "hook.sh", content / "hook.sh")
    (content / "hook.sh").chmod(0o755)
    (content / "manifest.raucm").write_text(
        MANIFEST.format(
            compatible=info["compatible"],
            version=info["version"],
            build=info["inputs"],
            vehicle=info["vehicle"],
            built=info["built"],
        )
    )
    _run(
        "rauc", "bundle", f"--cert={keys.cert}", f"--key={keys.key}", f"--signing-keyring={keys.keyring}",
        "--mksquashfs-args=-comp zstd -Xcompression-level 6 -processors 2", str(content), str(bundle),
    )  # fmt: skip
    return {"kernel": kernel, "root_mib": root_mib, "tree_mib": used, "compatible": info["compatible"]}


def _size(path: Path) -> int:
    """Bytes used on disk (a raw image is sparse, a directory is a tree)."""
    used = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True)
    return int(used.stdout.split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image-build/build.py", description=__doc__)
    parser.add_argument("--profile", type=Path, required=True, help="the vehicle profile (profiles/<van>.toml)")
    parser.add_argument("--out", type=Path, default=None, help="the image (default: build/image/<vehicle id>)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="directory", help="directory or raw disk")
    parser.add_argument("--hostname", default=None, help="default: the profile's vehicle id")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="package, incremental and wheel caches")
    parser.add_argument("--arch", choices=["x86_64", "aarch64"], default=platform.machine())
    parser.add_argument("--force", action="store_true", help="rebuild even when no input changed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON last")
    parser.add_argument("--version", dest="image_version", default=None, help="the image's version (default: "
                        "kioskd's and the date); an update bundle carries it in its signed manifest")  # fmt: skip
    parser.add_argument("--signing-key", default=os.environ.get("KIOSKD_UPDATE_KEY"),
                        help="key signing updates: a PEM file or a PKCS#11 URL ($KIOSKD_UPDATE_KEY)")  # fmt: skip
    parser.add_argument("--signing-cert", default=os.environ.get("KIOSKD_UPDATE_CERT"),
                        help="its certificate ($KIOSKD_UPDATE_CERT)")  # fmt: skip
    parser.add_argument("--keyring", type=Path, default=os.environ.get("KIOSKD_UPDATE_KEYRING"),
                        help="the CA certificate the van trusts updates by ($KIOSKD_UPDATE_KEYRING; default: "
                        "the signing certificate)")  # fmt: skip
    parser.add_argument(
        "--guest-agent", action="store_true", help="add qemu-guest-agent (the virtual van's test channel)"
    )
    args = parser.parse_args(argv)
    fmt = FORMATS[args.format]
    profile_path = args.profile.resolve()
    out = args.out
    if out is None:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, KeyError), profile_path.open("rb") as f:
            out = ROOT / "build" / "image" / str(tomllib.load(f)["vehicle"]["id"])
        out = out or ROOT / "build" / "image" / profile_path.stem
        if fmt == "disk":
            out = out.with_name(out.name + ".raw")
        elif fmt == "update":
            out = out.with_name(out.name + ".raucb")
    keys = None
    if args.signing_key or args.signing_cert:
        if not (args.signing_key and args.signing_cert):
            print("image-build: --signing-key and --signing-cert go together", file=sys.stderr)
            return 1
        keys = Keys(args.signing_key, args.signing_cert, Path(args.keyring or args.signing_cert))
    try:
        result = build(
            profile_path, out.resolve(), args.cache.resolve(), fmt, args.hostname, args.arch, args.force,
            args.guest_agent, args.image_version, keys,
        )  # fmt: skip
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"image-build: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
