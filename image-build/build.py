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
# What the image is made of: a change to any of these files rebuilds it.
INPUT_PATHS = ["pyproject.toml", "kioskd", "drivers", "systemd", "image-build"]
FORMATS = {"directory": "directory", "disk": "gpt_ext4"}
TOOLS = {"mkosi": "mkosi", "debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}
STEPS = 6
# issue 20 (power): upsd + the NUT driver for a UPS on this PC, UPower's critical action (image-build/power/)
sys.path.insert(0, str(HERE / "power"))
import power_image  # noqa: E402


class BuildError(Exception):
    """A build that cannot go on; the message says what to do."""


class Progress:
    """``[n/6] what`` lines with the time since the build started (mkosi prints its own steps in between)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.n = 0

    def step(self, what: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{STEPS}] {what}  (+{self.elapsed():.0f} s)", flush=True)

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
    packages = sorted({package for driver in drivers for package in DRIVER_PACKAGES.get(driver, [])})
    packages = sorted({*packages, *power_image.packages(profile)})  # issue 20: nut-server when the UPS is here
    if profile.get("media", {}).get("driver", "fuse") == "fuse":  # issue 22: the citizen's sticks through FUSE
        packages += MEDIA_PACKAGES
    app = profile.get("station", {}).get("app", [])
    if app and Path(app[0]).name in ("chromium", "chromium-browser"):
        packages += CHROMIUM_PACKAGES
    return packages


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


def check_tools() -> None:
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
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


def stage_tree(tree: Path, profile_path: Path, wheels: Path, kioskd_wheel: Path, info: dict[str, Any]) -> None:
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
    put(profile_path, "/etc/kioskd/profile.toml")
    put(ROOT / "README.md", "/usr/share/doc/kioskd/README.md")
    for wheel in [*wheels.glob("*.whl"), kioskd_wheel]:
        put(wheel, f"/root/kioskd-wheels/{wheel.name}")
    power_image.stage(tree, tomllib.loads(profile_path.read_text()))  # issue 20: /etc/nut, /etc/UPower
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
    profile_path: Path, out: Path, cache: Path, fmt: str, hostname: str | None, arch: str, force: bool
) -> dict[str, Any]:
    progress = Progress()
    progress.step(f"checking the tools and the profile {profile_path}")
    check_tools()
    profile = read_profile(profile_path)
    hostname = hostname or str(profile["vehicle"]["id"])
    packages = profile_packages(profile)
    mkosi_version = subprocess.run(["mkosi", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    files = input_files()
    inputs = _sha256(
        *(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() for path in files),
        profile_path.read_bytes(),
        json.dumps([fmt, hostname, arch, packages, mkosi_version]).encode(),
        constraints().encode(),
    )
    stamp = out.with_name(out.name + ".inputs")
    if not force and out.exists() and stamp.exists() and stamp.read_text().strip() == inputs:
        print(f"image up to date (inputs {inputs[:12]}): {out}", flush=True)
        return {"out": str(out), "inputs": inputs, "built": False, "seconds": progress.elapsed()}

    with locked(cache), tempfile.TemporaryDirectory(prefix="kioskd-image-") as tmp:
        progress.step("wheels: kioskd and its dependencies for the image's python3.11")
        wheels = dependency_wheels(cache, arch)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(ROOT))
        (kioskd_wheel,) = Path(tmp).glob("kioskd-*.whl")

        progress.step("staging the extra tree: units, profile, CUPS and logind configuration")
        info = {
            "vehicle": profile["vehicle"]["id"],
            "profile": profile_path.name,
            "inputs": inputs,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "extra_packages": packages,
        }
        tree = Path(tmp) / "tree"
        stage_tree(tree, profile_path, wheels, kioskd_wheel, info)

        progress.step(f"mkosi: Debian 12 {arch}, {fmt}, {len(packages)} package(s) from the profile")
        # The incremental cache holds the image with its packages installed: keyed by what decides them.
        key = _sha256((HERE / "mkosi.conf").read_bytes(), json.dumps([fmt, arch, packages]).encode())[:16]
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
        built = made / f"{image_id}{'.raw' if fmt == 'gpt_ext4' else ''}"
        for stale in (built, built.with_name(built.name + ".manifest")):
            subprocess.run(["rm", "-rf", str(stale)], check=True)
        command = [
            "mkosi", "--nspawn-keep-unit", "--incremental", f"--format={fmt}", f"--architecture={arch}",
            f"--image-id={image_id}", f"--output-dir={mkosi_dir}", f"--output={built.name}",
            f"--cache={cache / 'apt'}", f"--workspace-dir={mkosi_dir}", f"--hostname={hostname}",
            f"--extra-tree={tree}", f"--postinst-script={HERE / 'mkosi.postinst'}",
            *(f"--package={package}" for package in packages),
            *(["--bmap"] if fmt == "gpt_ext4" and shutil.which("bmaptool") else []),
            "build",
        ]  # fmt: skip
        print("$ " + " ".join(command), flush=True)
        result = subprocess.run(command, cwd=HERE, check=False)
        if result.returncode != 0:
            raise BuildError(f"mkosi failed (exit {result.returncode}); its output above says where")
        if not pre_dev.exists():
            pre_dev.mkdir()

        progress.step(f"installing the image at {out}")
        stamp.unlink(missing_ok=True)
        _replace(built, out)
        for extra in (".manifest", ".bmap"):
            if (side := built.with_name(built.name + extra)).exists():
                _replace(side, out.with_name(out.name + extra))
        stamp.write_text(inputs + "\n")

    progress.step("done")
    size = _size(out)
    kind = "directory" if fmt == "directory" else "raw disk, allocated"
    print(f"image: {out} ({kind} {size / 1e6:.0f} MB), built in {progress.elapsed():.0f} s", flush=True)
    if fmt == "directory":
        print(f"boot it: systemd-nspawn --register=no --keep-unit -b -D {out}", flush=True)
    return {"out": str(out), "inputs": inputs, "built": True, "seconds": progress.elapsed(), "bytes": size}


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
    args = parser.parse_args(argv)
    fmt = FORMATS[args.format]
    profile_path = args.profile.resolve()
    out = args.out
    if out is None:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError, KeyError), profile_path.open("rb") as f:
            out = ROOT / "build" / "image" / str(tomllib.load(f)["vehicle"]["id"])
        out = out or ROOT / "build" / "image" / profile_path.stem
        if fmt == "gpt_ext4":
            out = out.with_name(out.name + ".raw")
    try:
        result = build(profile_path, out.resolve(), args.cache.resolve(), fmt, args.hostname, args.arch, args.force)
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"image-build: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
