"""A citizen session's workspace: a private tmpfs (or, without the right to mount, a private 0700 directory)
holding the session app's HOME, its downloads, the browser profile, the scans and the documents sent to print.

It must not log what is inside (file names could name the citizen); it only counts files."""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kioskd.errors import WipeError

SUBDIRS = ("home", "downloads", "browser", "scans", "prints", "tmp")
Kind = Literal["tmpfs", "directory"]


@dataclass(frozen=True)
class Workspace:
    root: Path
    kind: Kind

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def browser(self) -> Path:
        return self.root / "browser"

    @property
    def scans(self) -> Path:
        return self.root / "scans"

    @property
    def prints(self) -> Path:
        return self.root / "prints"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def counts(self) -> dict[str, int]:
        return {"scans": count_files(self.scans), "downloads": count_files(self.downloads)}


def redact(text: str, sessions_root: Path) -> str:
    """``text`` with everything after a session's directory cut out: ``<root>/<id>/scans/dupont.pdf`` becomes
    ``<root>/<id>/…`` (the id is kept: it is what technicians correlate with receipts)."""
    prefix = re.escape(str(sessions_root).rstrip("/") + "/")
    return re.sub(prefix + r"([^/\s'\"]+)/[^\s'\"]*", lambda m: f"{sessions_root}/{m.group(1)}/…", text)


def count_files(path: Path) -> int:
    """Regular files under ``path`` (recursively), without following links."""
    total = 0
    try:
        for _, _, files in os.walk(path):
            total += len(files)
    except OSError:
        return total
    return total


def can_mount() -> bool:
    return os.geteuid() == 0


def is_mountpoint(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            return any(line.split()[4] == target for line in mounts)
    except OSError:
        return os.path.ismount(path)


_libc = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2


def _mount_tmpfs(target: Path, size: str) -> str | None:
    """mount(2) directly: spawning mount(8) costs more than the whole wipe of a tmpfs. None, or the error."""
    options = f"size={size},mode=0700".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc.mount(b"kiosk-session", str(target).encode(), b"tmpfs", flags, options) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def _umount(target: Path, lazy: bool = False) -> str | None:
    if _libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0) != 0:
        return os.strerror(ctypes.get_errno())
    return None


async def create(root: Path, wanted: Literal["auto", "tmpfs", "directory"], size: str) -> Workspace:
    """Make the workspace at ``root``: a tmpfs when asked (or ``auto``) and allowed, else a private directory."""
    await asyncio.to_thread(root.mkdir, 0o700)
    kind: Kind = "directory"
    if wanted in ("auto", "tmpfs") and can_mount():
        err = await asyncio.to_thread(_mount_tmpfs, root, size)
        if err is None:
            kind = "tmpfs"
        elif wanted == "tmpfs":
            await asyncio.to_thread(root.rmdir)
            raise WipeError(f"cannot mount the session tmpfs: {err}", where="workspace", action="check mount rights")
    ws = Workspace(root, kind)
    await asyncio.to_thread(_furnish, ws)
    return ws


def _furnish(ws: Workspace) -> None:
    """The workspace's folders, and the session app's XDG user dirs pointing into it (downloads above all)."""
    os.chmod(ws.root, 0o700)
    for name in SUBDIRS:
        (ws.root / name).mkdir(mode=0o700)
    config = ws.home / ".config"
    config.mkdir(mode=0o700)
    (config / "user-dirs.dirs").write_text(
        f'XDG_DOWNLOAD_DIR="{ws.downloads}"\nXDG_DESKTOP_DIR="{ws.home}"\nXDG_DOCUMENTS_DIR="{ws.downloads}"\n'
    )


async def remove(root: Path) -> None:
    """Unmount (which drops a tmpfs's content at once) and remove the workspace; raises if anything stays."""
    if is_mountpoint(root):
        err = await asyncio.to_thread(_umount, root)
        if err is not None:
            # a process still holds a file open: detach now, the memory is freed when it lets go
            err = await asyncio.to_thread(_umount, root, True)
            if err is not None:
                raise WipeError(f"cannot unmount the workspace: {err}", where="workspace")
    await asyncio.to_thread(_remove_tree, root)


def _remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


async def clear(path: Path) -> None:
    """Empty one folder of the workspace (downloads, scans, browser profile), keeping the folder itself."""

    def run() -> None:
        if not path.exists():
            return
        for entry in os.scandir(path):
            _remove_tree(Path(entry.path))

    await asyncio.to_thread(run)


def leftovers(root: Path) -> list[str]:
    """What verification finds of a workspace that should be gone (descriptions, never names)."""
    problems = []
    if is_mountpoint(root):
        problems.append("workspace still mounted")
    if root.exists():
        problems.append(f"workspace still exists ({count_files(root)} files)")
    return problems
