"""USB stick images for the media tests: made by mkfs.vfat / mkntfs / mkfs.exfat, filled through the same FUSE
drivers (run here as root, read-write, outside any session), and read back to compare the stick's own files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.integration.require import binary

MKFS = {
    "vfat": (("mkfs.vfat", "dosfstools"), ["-n", "CITOYEN"]),
    "ntfs": (("mkntfs", "ntfs-3g"), ["-F", "-f", "-q", "-L", "CITOYEN"]),
    "exfat": (("mkfs.exfat", "exfatprogs"), ["-L", "CITOYEN"]),
}
RW = {
    "vfat": ("fusefat", "fusefat", "rw+"),
    "ntfs": ("ntfs-3g", "ntfs-3g", "rw"),
    "exfat": ("mount.exfat-fuse", "exfat-fuse", "rw"),
}


def require_fuse() -> None:
    binary("fusermount3", "fuse3")
    with open("/etc/fuse.conf", encoding="utf-8") as conf:
        if not any(line.strip() == "user_allow_other" for line in conf):
            import pytest

            pytest.fail("/etc/fuse.conf needs `user_allow_other` (the drivers run unprivileged): echo it in as root")


def make_image(path: Path, fs: str, size_mb: int = 64) -> Path:
    (tool, package), args = MKFS[fs]
    binary(tool, package)
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run([tool, *args, str(path)], check=True, capture_output=True, timeout=120)
    return path


@contextlib.contextmanager
def opened(image: Path, fs: str, writable: bool = False) -> Iterator[Path]:
    """The image mounted by its FUSE driver as root (the test's own access, not kioskd's)."""
    driver, package, rw = RW[fs]
    binary(driver, package)
    where = Path(tempfile.mkdtemp(prefix="stick-"))
    mode = rw if writable else "ro"
    subprocess.run(
        [driver, "-o", mode, str(image), str(where)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield where
    finally:
        os.sync()
        subprocess.run(["umount", str(where)], check=False)
        for _ in range(100):  # the driver writes its tables out as it exits
            if not any(str(where).encode() in _cmdline(pid) for pid in _pids()):
                break
            subprocess.run(["sleep", "0.05"], check=False)
        where.rmdir()


def _pids() -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def fill(image: Path, fs: str, files: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    with opened(image, fs, writable=True) as root:
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        for name, target in (links or {}).items():
            os.symlink(target, root / name)


def digest_tree(image: Path, fs: str, skip: str | None = None) -> dict[str, str]:
    """Every file on the stick (relative path → sha256), but the folders starting with ``skip``."""
    found: dict[str, str] = {}
    with opened(image, fs) as root:
        for folder, _, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            if skip and rel.split(os.sep)[0].startswith(skip):
                continue
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    found[os.path.join(rel, name)] = "link:" + os.readlink(path)
                else:
                    found[os.path.join(rel, name)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def exported(image: Path, fs: str, prefix: str) -> dict[str, bytes]:
    with opened(image, fs) as root:
        return {
            f"{d.name}/{f.name}": f.read_bytes()
            for d in sorted(root.iterdir())
            if d.is_dir() and d.name.startswith(prefix)
            for f in sorted(d.iterdir())
        }
