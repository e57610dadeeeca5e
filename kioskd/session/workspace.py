"""A citizen session's workspace: a private tmpfs (or, without the right to mount, a private 0700 directory)
holding the session app's HOME, its downloads, the browser profile, the scans and the documents sent to print.

It must not log what is inside (file names could name the citizen); it only counts files."""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kioskd.errors import WipeError

SUBDIRS = ("home", "downloads", "browser", "scans", "prints", "tmp", "media")  # media: the citizen's sticks
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


def mounts_under(folder: Path) -> int:
    """How many mounts lie at or below ``folder`` (the citizen's sticks in ``media``)."""
    prefix = str(folder).replace(" ", "\\040").rstrip("/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            points = [line.split()[4] for line in mounts]
    except OSError:
        return 0
    return sum(1 for p in points if p == prefix or p.startswith(prefix + "/"))


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


def _mount_tmpfs(target: Path, size: str, share_gid: int | None = None) -> str | None:
    """mount(2) directly: spawning mount(8) costs more than the whole wipe of a tmpfs. None, or the error."""
    access = "mode=0700" if share_gid is None else f"mode=2770,gid={share_gid}"
    options = f"size={size},{access}".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc.mount(b"kiosk-session", str(target).encode(), b"tmpfs", flags, options) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def _umount(target: Path, lazy: bool = False) -> str | None:
    if _libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0) != 0:
        return os.strerror(ctypes.get_errno())
    return None


async def create(
    root: Path, wanted: Literal["auto", "tmpfs", "directory"], size: str, share_gid: int | None = None
) -> Workspace:
    """Make the workspace at ``root``: a tmpfs when asked (or ``auto``) and allowed, else a private directory.

    With ``share_gid`` (the session app's group, of which kioskd's user is a member) every folder is 2770 in that
    group: the app writes its home and downloads, kioskd its scans, and nobody else reads either."""
    await asyncio.to_thread(root.mkdir, 0o700)
    kind: Kind = "directory"
    if wanted in ("auto", "tmpfs") and can_mount():
        err = await asyncio.to_thread(_mount_tmpfs, root, size, share_gid)
        if err is None:
            kind = "tmpfs"
        elif wanted == "tmpfs":
            await asyncio.to_thread(root.rmdir)
            raise WipeError(f"cannot mount the session tmpfs: {err}", where="workspace", action="check mount rights")
    ws = Workspace(root, kind)
    await asyncio.to_thread(_furnish, ws, share_gid)
    return ws


def _furnish(ws: Workspace, share_gid: int | None) -> None:
    """The workspace's folders, and the session app's XDG user dirs pointing into it (downloads above all)."""
    mode = 0o700 if share_gid is None else 0o2770
    if share_gid is not None:
        os.chown(ws.root, -1, share_gid)  # kioskd's user is a member of the group: no capability needed
    os.chmod(ws.root, mode)
    config = ws.home / ".config"
    for folder in [*(ws.root / name for name in SUBDIRS), config]:
        folder.mkdir(mode=0o700)
        if share_gid is not None:
            os.chown(folder, -1, share_gid)
        os.chmod(folder, mode)  # not the umask's choice
    (config / "user-dirs.dirs").write_text(
        f'XDG_DOWNLOAD_DIR="{ws.downloads}"\nXDG_DESKTOP_DIR="{ws.home}"\nXDG_DOCUMENTS_DIR="{ws.downloads}"\n'
    )


def _delete_as(path: Path, user: tuple[int, int]) -> None:
    """Empty ``path`` as the session app's user: its own private folders (Chromium makes them 0700) are closed to
    kioskd, which holds no right to override file permissions."""
    subprocess.run(
        ["find", str(path), "-mindepth", "1", "-delete"],
        user=user[0],
        group=user[1],
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # its messages would name the citizen's files
        check=False,
        timeout=60,
    )


async def remove(root: Path, as_user: tuple[int, int] | None = None) -> None:
    """Unmount (which drops a tmpfs's content at once) and remove the workspace; raises if anything stays."""
    if is_mountpoint(root):
        err = await asyncio.to_thread(_umount, root)
        if err is not None:
            # a process still holds a file open: detach now, the memory is freed when it lets go
            err = await asyncio.to_thread(_umount, root, True)
            if err is not None:
                raise WipeError(f"cannot unmount the workspace: {err}", where="workspace")
    try:
        await asyncio.to_thread(_remove_tree, root)
    except PermissionError:
        if as_user is None:
            raise
        await asyncio.to_thread(_delete_as, root, as_user)
        await asyncio.to_thread(_remove_tree, root)


def _remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


async def clear(path: Path, as_user: tuple[int, int] | None = None) -> None:
    """Empty one folder of the workspace (downloads, scans, browser profile), keeping the folder itself; what the
    session app's user closed to kioskd is deleted as that user."""

    def run() -> None:
        if not path.exists():
            return
        for entry in os.scandir(path):
            try:
                _remove_tree(Path(entry.path))
            except PermissionError:
                if as_user is None:
                    raise
                _delete_as(path, as_user)
                return

    await asyncio.to_thread(run)


def leftovers(root: Path) -> list[str]:
    """What verification finds of a workspace that should be gone (descriptions, never names)."""
    problems = []
    if is_mountpoint(root):
        problems.append("workspace still mounted")
    if root.exists():
        problems.append(f"workspace still exists ({count_files(root)} files)")
    return problems
