"""A citizen session's workspace: a private tmpfs (or, without the right to mount, a private 0700 directory)
holding the session app's HOME, its downloads, the browser profile, the scans and the documents sent to print.

It must not log what is inside (file names could name the citizen); it only counts files. The session app shares
the workspace and may tamper with it (a folder swapped for a link, a FIFO named like a scan): every walk here opens
each level with ``O_NOFOLLOW|O_DIRECTORY`` relative to its parent's descriptor, every file kioskd reads back is
opened ``O_NOFOLLOW|O_NONBLOCK`` and refused unless ``fstat`` says regular and small enough, so nothing here ever
follows a link out of the workspace or blocks on what the app planted."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kioskd.errors import WipeError

SUBDIRS = ("home", "downloads", "browser", "scans", "prints", "tmp", "media")  # media: the citizen's sticks
Kind = Literal["tmpfs", "directory"]
# Opening a folder of the workspace: never through a link (O_NOFOLLOW), never anything but a folder (O_DIRECTORY).
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Opening a file kioskd reads back (a scan): a link is refused, a FIFO does not block the open (O_NONBLOCK).
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Deeper than this, kioskd's own walk stops (one descriptor per level): the app user's find(1) finishes it.
MAX_DEPTH = 200
# The largest scan kioskd reads back: the profile's largest upload budget (profile.UploadDestination.max_bytes).
MAX_SCAN_BYTES = 100_000_000


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

    def scan_files(self) -> list[tuple[str, int]]:
        """The PDFs in the scans folder (name, bytes): regular files only, the folder itself never through a link."""
        try:
            folder = os.open(self.scans, _DIR)
        except OSError:
            return []
        try:
            return sorted(
                (entry.name, entry.stat(follow_symlinks=False).st_size)
                for entry in _entries(folder)
                if entry.name.endswith(".pdf") and entry.is_file(follow_symlinks=False)
            )
        finally:
            os.close(folder)

    def write_print(self, name: str, data: bytes) -> int:
        """Write a document kioskd sends to print as ``prints/<name>`` and return a descriptor open on that very file:
        the printer reads it through ``/proc/self/fd/<fd>``, never by a path the session app could swap for a link
        between the write and the read (the folder is shared with the app's group). Whatever the app planted under
        that name (a link to a system file) is unlinked, never written through."""
        folder = os.open(self.prints, _DIR)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640, dir_fd=folder)
        finally:
            os.close(folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_scan(self, name: str) -> bytes | None:
        """One scan's bytes, or None when ``name`` is not a regular file of the scans folder, or is larger than any
        scan kioskd writes (``MAX_SCAN_BYTES``): a link, a FIFO (opened without blocking, then refused), a device
        or a huge sparse file never reaches a reader."""
        if "/" in name or name in ("", ".", ".."):
            return None
        try:
            folder = os.open(self.scans, _DIR)
        except OSError:
            return None
        try:
            return read_regular(Path(name), folder)
        finally:
            os.close(folder)


def read_regular(path: Path, dir_fd: int | None = None, limit: int = MAX_SCAN_BYTES) -> bytes | None:
    """The bytes of ``path`` (relative to ``dir_fd`` if given) when it is a regular file of at most ``limit``
    bytes, else None: opened without following a link and without blocking (a FIFO's open returns at once and
    fstat refuses it), so no reader thread ever waits on what the session app planted."""
    try:
        fd = os.open(path, _FILE, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks, left = [], info.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def redact(text: str, sessions_root: Path) -> str:
    """``text`` with everything after a session's directory cut out: ``<root>/<id>/scans/dupont.pdf`` becomes
    ``<root>/<id>/…`` (the id is kept: it is what technicians correlate with receipts)."""
    prefix = re.escape(str(sessions_root).rstrip("/") + "/")
    return re.sub(prefix + r"([^/\s'\"]+)/[^\s'\"]*", lambda m: f"{sessions_root}/{m.group(1)}/…", text)


def count_files(path: Path) -> int:
    """Regular files under ``path`` (recursively), without following links: ``path`` itself is opened with
    ``O_NOFOLLOW`` (a folder the session app swapped for a link counts nothing) and every level below relative to
    its parent's descriptor, so no link anywhere leads the count out of the workspace."""
    try:
        folder = os.open(path, _DIR)
    except OSError:
        return 0
    try:
        return _count_at(folder, 0)
    finally:
        os.close(folder)


def _entries(folder: int) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as listing:
        return list(listing)


def _count_at(folder: int, depth: int) -> int:
    total = 0
    try:
        entries = _entries(folder)
    except OSError:
        return 0
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
            try:
                sub = os.open(entry.name, _DIR, dir_fd=folder)
            except OSError:
                continue  # closed to kioskd (the app's 0700 folders), or swapped for a link since listed
            try:
                total += _count_at(sub, depth + 1)
            finally:
                os.close(sub)
        elif entry.is_file(follow_symlinks=False):
            total += 1
    return total


class _TooDeep(Exception):
    """A tree deeper than ``MAX_DEPTH``: kioskd's walk hands it to the app user's find(1)."""


def _empty_at(folder: int, depth: int) -> None:
    """Remove everything in the open folder ``folder``, each name relative to its parent's descriptor: a link is
    unlinked, never followed; a folder swapped for a link between listing and opening is refused by O_NOFOLLOW and
    unlinked in turn."""
    for entry in _entries(folder):
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.name, dir_fd=folder)
            continue
        try:
            sub = os.open(entry.name, _DIR, dir_fd=folder)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            os.unlink(entry.name, dir_fd=folder)
            continue
        try:
            if depth >= MAX_DEPTH:
                raise _TooDeep
            _empty_at(sub, depth + 1)
        finally:
            os.close(sub)
        os.rmdir(entry.name, dir_fd=folder)


def check_layout(root: Path) -> int:
    """How many things of the workspace at ``root`` are not what kioskd made: a folder of ``SUBDIRS`` that is no
    longer a folder (a link, a file, a FIFO, a device node), or an entry of the scans folder that is not a regular
    file (kioskd writes nothing else there). The misplaced folders are unlinked here, never followed; the scans'
    strays go with the scans handler. A count only: names could name the citizen."""
    try:
        top = os.open(root, _DIR)
    except OSError:
        return 0
    tampered = 0
    try:
        for name in SUBDIRS:
            try:
                info = os.stat(name, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(info.st_mode):
                tampered += 1
                os.unlink(name, dir_fd=top)
        try:
            scans = os.open("scans", _DIR, dir_fd=top)
        except OSError:
            return tampered
        try:
            tampered += sum(1 for entry in _entries(scans) if not entry.is_file(follow_symlinks=False))
        finally:
            os.close(scans)
    finally:
        os.close(top)
    return tampered


def mounts_under(folder: Path) -> int:
    """How many mounts lie at or below ``folder`` (the citizen's sticks in ``media``)."""
    prefix = str(folder).replace(" ", "\\040").rstrip("/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            points = [line.split()[4] for line in mounts]
    except OSError:
        return 0
    return sum(1 for p in points if p == prefix or p.startswith(prefix + "/"))


CAP_SYS_ADMIN = 21


def can_mount() -> bool:
    """Whether this process may mount the session's tmpfs: CAP_SYS_ADMIN in its effective set, which root has and
    which kioskd.service gives its ``kiosk`` user (AmbientCapabilities=). Testing the uid alone left the van on the
    fallback directory in /run, where a session could fill the PC's /run and nothing capped its size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    except (OSError, ValueError):
        pass
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
    _chmod(ws.root, mode)
    config = ws.home / ".config"
    for folder in [*(ws.root / name for name in SUBDIRS), config]:
        folder.mkdir(mode=0o700)
        if share_gid is not None:
            os.chown(folder, -1, share_gid)
        _chmod(folder, mode)  # not the umask's choice
    (config / "user-dirs.dirs").write_text(
        f'XDG_DOWNLOAD_DIR="{ws.downloads}"\nXDG_DESKTOP_DIR="{ws.home}"\nXDG_DOCUMENTS_DIR="{ws.downloads}"\n'
    )


def _chmod(path: Path, mode: int) -> None:
    """``mode``, without its setgid bit where kioskd.service's RestrictSUIDSGID= refuses it (EPERM, seen in the
    virtual van): the folders stay in the app's group, and what the app writes carries that group anyway."""
    try:
        os.chmod(path, mode)
    except PermissionError:
        if not mode & stat.S_ISGID:
            raise
        os.chmod(path, mode & ~stat.S_ISGID)


def _delete_as(path: Path, user: tuple[int, int] | None) -> None:
    """Empty ``path`` as the session app's user: its own private folders (Chromium makes them 0700) are closed to
    kioskd, which holds no right to override file permissions. As safe as the app's own rights: find(1) runs as
    that user (a link to a folder it cannot write deletes nothing), never follows a link (``-P``, the starting
    point included), and is given ``path`` only when it is a real folder (a link there is unlinked by kioskd).
    Without an app user (``None``) find(1) runs as kioskd: for a tree deeper than kioskd's own walk goes."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    subprocess.run(
        ["find", "-P", str(path), "-mindepth", "1", "-delete"],
        user=user[0] if user else None,
        group=user[1] if user else None,
        extra_groups=[] if user else None,
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
    except _TooDeep:
        await asyncio.to_thread(_delete_as, root, as_user)
        await asyncio.to_thread(_remove_tree, root)
    except PermissionError:
        if as_user is None:
            raise
        await asyncio.to_thread(_delete_as, root, as_user)
        await asyncio.to_thread(_remove_tree, root)


def _remove_tree(path: Path) -> None:
    """``path`` and all below it, never following a link (a link at ``path`` itself is unlinked)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    folder = os.open(path, _DIR)
    try:
        _empty_at(folder, 0)
    finally:
        os.close(folder)
    os.rmdir(path)


async def clear(path: Path, as_user: tuple[int, int] | None = None) -> None:
    """Empty one folder of the workspace (downloads, scans, browser profile), keeping the folder itself; what the
    session app's user closed to kioskd is deleted as that user. A folder swapped for a link (or anything else
    that is not a folder) is unlinked, never followed."""

    def run() -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(path)
            return
        try:
            folder = os.open(path, _DIR)
        except PermissionError:
            if as_user is None:
                raise
            _delete_as(path, as_user)
            return
        try:
            _empty_at(folder, 0)
        except _TooDeep:
            _delete_as(path, as_user)
        except PermissionError:
            if as_user is None:
                raise
            _delete_as(path, as_user)
        finally:
            os.close(folder)

    await asyncio.to_thread(run)


def leftovers(root: Path) -> list[str]:
    """What verification finds of a workspace that should be gone (descriptions, never names); a link or file left
    at ``root`` counts as the workspace still existing, and is never followed."""
    problems = []
    if is_mountpoint(root):
        problems.append("workspace still mounted")
    if os.path.lexists(root):
        problems.append(f"workspace still exists ({count_files(root)} files)")
    return problems
