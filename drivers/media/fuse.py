"""The citizen's USB sticks through FUSE drivers, as ChromeOS's cros-disks mounts removable media: the untrusted
file system is parsed by ``fusefat``, ``mount.exfat-fuse`` or ``ntfs-3g`` running as an unprivileged user of its own
(``fuse_user``: kiosk-media in the van, with CAP_SYS_ADMIN as its only capability; ``nobody`` when kioskd is root)
with no network, never by a kernel driver. udev (pyudev) says when a stick comes and goes; the simulated van feeds
image files through ``arrive``/``depart`` and the same code runs.

It never logs or reports a name found on a stick; messages from the drivers are discarded."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import errno
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from kioskd.hal import (
    DeviceError,
    DriverContext,
    ExportFault,
    ExportResult,
    MediaChanged,
    MediaInserted,
    MediaOptions,
    MediaRemoved,
    MediaState,
    Stick,
    Tally,
)

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
MS_MOVE = 8192
MS_BIND = 4096
# blkid's names for what we mount, and the drivers that parse them (all FUSE, all take an image file or a node)
FILESYSTEMS = {"vfat": "vfat", "exfat": "exfat", "ntfs": "ntfs"}
DRIVERS = {"vfat": "fusefat", "exfat": "mount.exfat-fuse", "ntfs": "ntfs-3g"}
MOUNT_TIMEOUT = 15.0
PULLED = {errno.ENOTCONN, errno.EIO, errno.ENODEV, errno.ENXIO, errno.ECONNABORTED, errno.ENOENT}
WRITE_PROTECTED = {errno.EROFS, errno.EACCES, errno.EPERM}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_PRIVATE = 1, 2, 4, 8, 32, 1 << 18
# capability numbers (linux/capability.h)
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_ADMIN = 5, 6, 7, 8, 21
# What kioskd needs to hand a driver CAP_SYS_ADMIN alone: a uid and gid of its own (SETUID, SETGID), a bounding set
# of that one capability (SETPCAP: setpriv drops the rest silently without it, seen), and ending it (KILL).
SANDBOX_CAPS = {"CAP_SETUID": CAP_SETUID, "CAP_SETGID": CAP_SETGID, "CAP_SETPCAP": CAP_SETPCAP, "CAP_KILL": CAP_KILL}
# How the drivers are started, by what kioskd is: "root" (tests, a laptop as root): the fuse_user with no capability,
# mounting through the setuid fusermount; "sandbox" (the van: a user of its own with ambient CAP_SYS_ADMIN): the
# fuse_user with CAP_SYS_ADMIN alone, which libfuse2 mounts with directly (NoNewPrivileges blocks fusermount);
# "own" (a developer's kioskd with no capability): kioskd's own user, which has nothing more to give away.
Sandbox = Literal["root", "sandbox", "own"]


class ExportStopped(Exception):
    def __init__(self, fault: ExportFault) -> None:
        super().__init__(fault)
        self.fault = fault


@dataclass
class _Volume:
    stick: Stick
    source: Path
    target: Path | None = None
    mount_id: int | None = None
    dev: int | None = None
    group: int | None = None
    pids: list[int] = field(default_factory=list)
    gone: bool = False

    def pids_alive(self) -> bool:
        return any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in self.pids)


def _mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        return [line.split() for line in mounts]


def mount_id_of(target: Path) -> int | None:
    """The mount id (``/proc/self/mountinfo``'s first field) of the mount at ``target``, or None."""
    wanted = str(target).replace(" ", "\\040")
    ids = [int(fields[0]) for fields in _mountinfo() if fields[4] == wanted]
    return ids[-1] if ids else None


def probe(source: Path) -> tuple[str, str, int]:
    """(file system, label, size) of ``source`` as blkid sees it in low-level probing mode ("" when unknown)."""
    try:
        out = subprocess.run(
            ["blkid", "-p", "-o", "export", str(source)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        with open(source, "rb") as device:
            size = device.seek(0, os.SEEK_END)
    except OSError:
        size = 0
    label = "".join(ch for ch in fields.get("LABEL", "") if ch.isprintable())[:32]
    return fields.get("TYPE", ""), label, size


class FuseMedia:
    """USB sticks mounted by FUSE drivers (see the module's docstring); one worker thread per blocking job."""

    options_model: ClassVar[type[MediaOptions]] = MediaOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.options = ctx.parse_options(self.options_model)
        self._volumes: dict[str, _Volume] = {}
        self._tallies: dict[str, Tally] = {}
        self._lock = threading.Lock()
        self._observer: Any = None
        self._staging: Path | None = None

    # ------------------------------------------------------------------------------------------- state
    @property
    def state(self) -> MediaState:
        with self._lock:
            return MediaState(tuple(v.stick for v in self._volumes.values()))

    def _publish(self) -> None:
        self.ctx.emit(MediaChanged(self.state))

    def tally(self, session_id: str) -> Tally:
        return self._tallies.get(session_id, Tally())

    def _count(self, session_id: str, mounted: int = 0, exported: int = 0) -> None:
        old = self._tallies.get(session_id, Tally())
        self._tallies[session_id] = Tally(old.mounted + mounted, old.exported + exported)

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self.options.udev:
            await asyncio.to_thread(self._watch_udev)
        self._publish()

    async def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer = None
        for stick_id in list(self._volumes):
            volume = self._volumes[stick_id]
            if volume.target is not None:
                await asyncio.to_thread(self._unmount, volume, True)
        if self._staging is not None:
            _libc.umount2(os.fsencode(str(self._staging)), MNT_DETACH)
            with contextlib.suppress(OSError):
                shutil.rmtree(self._staging)

    def _watch_udev(self) -> None:
        """Sticks already there, then udev's add/remove of USB block devices carrying a file system."""
        try:
            import pyudev

            context = pyudev.Context()
            for device in context.list_devices(subsystem="block"):
                self._udev_event("add", device)
            monitor = pyudev.Monitor.from_netlink(context)
            monitor.filter_by("block")
            self._observer = pyudev.MonitorObserver(monitor, self._udev_event)
            self._observer.start()
        except Exception as exc:  # no udev (a container): sticks are simply never seen
            log.warning("media: no udev monitor: %s", type(exc).__name__)

    def _udev_event(self, action: str, device: Any) -> None:
        """On pyudev's thread: probing (blkid) and detaching are blocking, and ``arrive``/``depart`` are safe here."""
        if device.get("ID_BUS") != "usb" or not device.get("ID_FS_TYPE") or device.device_node is None:
            return
        stick_id = f"usb-{device.sys_name}"
        if action == "add":
            self.arrive(stick_id, device.device_node)
        elif action == "remove":
            self.depart(stick_id)

    # ------------------------------------------------------------------------------------------- arrival
    def arrive(self, stick_id: str, source: Path | str) -> Stick:
        """A stick is there (udev's add, or the simulated van's plug): probe it, say so; nothing is mounted."""
        source = Path(source)
        fs, label, size = probe(source)
        name = FILESYSTEMS.get(fs)
        supported = name is not None and name in self.options.filesystems
        stick = Stick(
            id=stick_id,
            label=label,
            size=size,
            filesystem=fs or "unknown",
            supported=supported,
            fault=None if supported else ("unknown-filesystem" if not fs else "unsupported"),
        )
        with self._lock:
            self._volumes[stick_id] = _Volume(stick, source)
        self.ctx.emit(MediaInserted(stick))
        self._publish()
        return stick

    def depart(self, stick_id: str) -> None:
        """The stick went away (udev's remove, the sim's pull): a mounted one is detached at once (lazily)."""
        with self._lock:
            volume = self._volumes.pop(stick_id, None)
        if volume is None:
            return
        volume.gone = True
        ejected = volume.target is None
        if not ejected:
            self._unmount(volume, lazy=True, kill=True)
        self.ctx.emit(MediaRemoved(volume.stick, ejected=ejected))
        self._publish()

    # ------------------------------------------------------------------------------------------- mount
    def _sandbox(self) -> Sandbox:
        """How the drivers run (see ``Sandbox``), from kioskd's own uid and effective capabilities."""
        if os.geteuid() == 0:
            return "root"
        caps = capabilities(os.getpid())["CapEff"]
        if not caps >> CAP_SYS_ADMIN & 1:
            return "own"
        missing = [name for name, bit in SANDBOX_CAPS.items() if not caps >> bit & 1]
        if missing:  # never hand the untrusted media's parser kioskd's own privileges instead
            raise DeviceError(
                f"cannot confine the FUSE driver: kioskd lacks {', '.join(missing)}",
                where="media",
                action=f"add {' '.join(missing)} to kioskd.service's AmbientCapabilities and CapabilityBoundingSet",
                key="media.failed",
            )
        return "sandbox"

    def _fuse_user(self) -> tuple[int, int] | None:
        """The user the drivers run as: ``fuse_user`` (never root, never kioskd's own), or None for kioskd's own."""
        if self._sandbox() == "own":
            return None
        try:
            entry = pwd.getpwnam(self.options.fuse_user)
        except KeyError:
            raise DeviceError(
                f"no user {self.options.fuse_user!r} for the FUSE drivers",
                where="media.fuse_user",
                action="systemd-sysusers (the image's kioskd-image.conf creates kiosk-media)",
                key="media.failed",
            ) from None
        if entry.pw_uid in (0, os.geteuid()):
            raise DeviceError(
                "the FUSE drivers must run as a user of their own, not root nor kioskd",
                where="media.fuse_user",
                key="media.failed",
            )
        return entry.pw_uid, entry.pw_gid

    def _command(self, fs: str, source: Path, target: Path, writable: bool, group: int | None) -> list[str]:
        owner = os.geteuid()
        gid = group if group is not None else os.getegid()
        common = "nosuid,nodev,noexec,allow_other"
        if fs == "vfat":  # fusefat has no uid/umask options: the workspace's folders keep others out
            opts = f"{'rw+' if writable else 'ro'},{common}"
        else:
            mode = "rw" if writable else "ro"
            opts = f"{mode},{common},uid={owner},gid={gid},umask=007"
        command = [DRIVERS[fs], "-o", opts, str(source), str(target)]
        return sandboxed(command, self._sandbox(), self._fuse_user())

    def _spawn(self, volume: _Volume, writable: bool) -> None:
        """Run the stick's driver and wait until its file system is mounted at the volume's target.

        The driver gets the node or image as an open descriptor (``/dev/fd/N``: it needs no path to it), but it
        reopens it through ``/proc/self/fd``, which checks the node's mode against the driver's own uid and gid: as
        root kioskd gives the node to the driver's user; in the van (no CAP_CHOWN) kioskd owns it (udev) and opens
        it to the driver's group, for reading only unless an export runs. The driver's user cannot traverse the
        workspace (0700), so it mounts on a staging folder of its own and kioskd moves the mount into the workspace
        (``MS_MOVE``), as cros-disks does, then remounts that point ``nosuid,nodev,noexec`` (and ``ro``) itself:
        the driver's own options are not trusted to have said so (exfat-fuse drops ``noexec``, seen)."""
        assert volume.target is not None
        fs = FILESYSTEMS[volume.stick.filesystem]
        sandbox = self._sandbox()
        user = self._fuse_user()
        if user is not None and sandbox == "root":  # the driver reopens the node or image: its own, only its own
            os.chown(volume.source, user[0], -1)
            os.chmod(volume.source, os.stat(volume.source).st_mode & 0o700)
        elif user is not None:
            _share(volume.source, user[1], writable)
        where = volume.target if user is None else self._stage(user, sandbox)
        try:
            descriptor = os.open(volume.source, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            if writable and exc.errno in WRITE_PROTECTED:
                raise ExportStopped("write-protected") from None
            raise DeviceError("the stick cannot be opened", where="media", key="media.absent") from None
        bound = None
        try:
            if fs == "ntfs" and user is not None and sandbox == "root":
                # ntfs-3g is setuid root: a setuid process cannot reopen /proc/self/fd, so it gets a path of its own
                # (under NoNewPrivileges, the van's, its setuid bit is ignored: /dev/fd/N works)
                bound = self._bind_source(volume.source, user)
                done = self._run_driver(fs, bound, where, writable, volume.group)
            else:
                done = self._run_driver(fs, Path(f"/dev/fd/{descriptor}"), where, writable, volume.group, descriptor)
        finally:
            os.close(descriptor)
            if user is not None and sandbox == "sandbox" and writable:
                # the driver holds the node open for writing by now (or failed): no later process of its user may
                _share(volume.source, user[1], writable=False)
            if bound is not None:  # the driver holds the device open; the path goes
                _libc.umount2(os.fsencode(str(bound)), MNT_DETACH)
                with contextlib.suppress(OSError):
                    bound.unlink()
        mount_id = mount_id_of(where)
        for _ in range(40 if done.returncode == 0 else 0):  # the driver's parent may exit as its mount lands
            if mount_id is not None:
                break
            threading.Event().wait(0.05)
            mount_id = mount_id_of(where)
        if done.returncode != 0 or mount_id is None:
            if mount_id is not None:  # mounted but the driver said no: take it down, leave nothing behind
                _libc.umount2(os.fsencode(str(where)), MNT_DETACH)
            self._drop_stage(where, volume.target)
            gist = done.stderr.decode("utf-8", "replace").lower()
            if writable and any(w in gist for w in ("read-only", "permission denied", "write-protect")):
                raise ExportStopped("write-protected")
            raise DeviceError("the stick's file system cannot be read", where="media", key="media.corrupt")
        for _ in range(40):  # the driver daemonizes: its serving process may take a moment to show
            volume.pids = self._driver_pids(where)
            if volume.pids:
                break
            threading.Event().wait(0.025)
        if user is not None and sandbox == "sandbox":
            unconfined = unconfined_reason(volume.pids, user[0])
            if unconfined is not None:
                _libc.umount2(os.fsencode(str(where)), MNT_DETACH)
                for pid in volume.pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                volume.pids = []
                self._drop_stage(where, volume.target)
                raise DeviceError(f"the FUSE driver is not confined: {unconfined}", where="media", key="media.failed")
        if where != volume.target:
            if _libc.mount(os.fsencode(str(where)), os.fsencode(str(volume.target)), None, MS_MOVE, None) != 0:
                err = ctypes.get_errno()
                _libc.umount2(os.fsencode(str(where)), MNT_DETACH)
                self._drop_stage(where, volume.target)
                raise DeviceError(f"cannot move the mount: {os.strerror(err)}", where="media", key="media.failed")
            self._drop_stage(where, volume.target)
            mount_id = mount_id_of(volume.target)
        if sandbox != "own" and not _seal(volume.target, writable):
            err = ctypes.get_errno()
            _libc.umount2(os.fsencode(str(volume.target)), MNT_DETACH)
            raise DeviceError(f"cannot seal the mount: {os.strerror(err)}", where="media", key="media.failed")
        volume.mount_id = mount_id
        if writable and mount_id is not None and self._mount_readonly(mount_id):
            raise ExportStopped("write-protected")  # exFAT's ro_fallback: a locked stick mounts read-only

    def _run_driver(
        self, fs: str, source: Path, where: Path, writable: bool, group: int | None, descriptor: int | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        command = self._command(fs, source, where, writable, group)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        try:
            return subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,  # read for its gist, never logged: it can quote the stick's names
                env=env,
                cwd="/",  # ntfs-3g refuses to start in a folder its user cannot enter (kioskd's, seen)
                timeout=MOUNT_TIMEOUT,
                check=False,
                pass_fds=() if descriptor is None else (descriptor,),
            )
        except FileNotFoundError:
            raise DeviceError(
                f"no FUSE driver for {fs}", where="media", action=f"apt-get install {DRIVERS[fs]}", key="media.failed"
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceError("the FUSE driver did not answer", where="media", key="media.corrupt") from None

    def _stage(self, user: tuple[int, int], sandbox: Sandbox) -> Path:
        """A folder the driver's user owns, in a root only kioskd may list (0711), in a place the driver's user can
        traverse: ``$TMPDIR`` may be a private 0700 folder (seen: a browser's test fixture set it, every mount then
        failed as "corrupt"), so the first of /run, ``$TMPDIR`` and /tmp whose every ancestor others may enter.

        The root is a private mount of its own when its parent's mount is shared: the kernel moves no mount out of a
        shared parent (EINVAL), and PrivateMounts= leaves every mount of kioskd's namespace shared (systemd's
        default MountFlags=; seen in the virtual van), where that mount also ends with the namespace."""
        if self._staging is None:
            staging = Path(tempfile.mkdtemp(prefix="kioskd-media-", dir=_staging_parent()))
            os.chmod(staging, 0o711)
            where = os.fsencode(str(staging))
            if _shared(staging) and (
                _libc.mount(where, where, None, MS_BIND, None) != 0
                or _libc.mount(None, where, None, MS_PRIVATE, None) != 0
            ):
                err = ctypes.get_errno()
                _libc.umount2(where, MNT_DETACH)
                staging.rmdir()
                raise DeviceError(f"cannot make a staging mount: {os.strerror(err)}", where="media", key="media.failed")
            self._staging = staging
        stage = Path(tempfile.mkdtemp(dir=self._staging))
        if sandbox == "root":
            os.chown(stage, user[0], -1)
            return stage
        # no CAP_CHOWN in the van: the folder stays kioskd's, opened to the driver's group (kioskd is a member,
        # image-build/kioskd-image.sysusers), which ntfs-3g checks it may write (a mount point of its own)
        try:
            os.chown(stage, -1, user[1])
        except PermissionError:
            raise DeviceError(
                "kioskd is not in the FUSE driver's group",
                where="media.fuse_user",
                action=f"add kioskd's user to the group of {self.options.fuse_user} (sysusers: m kiosk kiosk-media)",
                key="media.failed",
            ) from None
        os.chmod(stage, 0o770)
        return stage

    def _bind_source(self, source: Path, user: tuple[int, int]) -> Path:
        """``source`` bind-mounted on a file in the staging root, where the driver's user can reach it (root only)."""
        stage = self._stage(user, "root")
        bound = stage / "device"
        bound.touch(mode=0o600)
        os.chown(bound, user[0], -1)
        if _libc.mount(os.fsencode(str(source)), os.fsencode(str(bound)), None, MS_BIND, None) != 0:
            err = ctypes.get_errno()
            raise DeviceError(f"cannot reach the stick: {os.strerror(err)}", where="media", key="media.failed")
        return bound

    def _drop_stage(self, where: Path, target: Path) -> None:
        if where != target:
            with contextlib.suppress(OSError):
                where.rmdir()

    def _mount_readonly(self, mount_id: int) -> bool:
        for fields in _mountinfo():
            if int(fields[0]) == mount_id:
                return "ro" in fields[5].split(",") or "ro" in fields[-1].split(",")
        return False

    def _driver_pids(self, where: Path) -> list[int]:
        """The driver processes serving ``target`` (they daemonize: found by their command line)."""
        wanted = os.fsencode(str(where))
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if wanted in argv and any(os.path.basename(a).decode(errors="replace") in DRIVERS.values() for a in argv):
                found.append(int(entry.name))
        return found

    async def mount(self, stick_id: str, target: Path, session_id: str, group: int | None) -> Stick:
        volume = self._volumes.get(stick_id)
        if volume is None:
            raise DeviceError("no such stick", where="media", key="media.absent")
        if volume.target is not None:
            return volume.stick
        if not volume.stick.supported:
            raise DeviceError("file system not supported", where="media", key="media.unsupported")

        def run() -> None:
            target.mkdir(mode=0o770, exist_ok=True)
            if group is not None:
                os.chown(target, -1, group)
            os.chmod(target, 0o770 if group is not None else 0o700)
            volume.target, volume.group = target, group
            try:
                self._spawn(volume, writable=False)
            except BaseException:
                volume.target = None
                with contextlib.suppress(OSError):
                    target.rmdir()
                raise

        await asyncio.to_thread(run)
        volume.stick = replace(volume.stick, mounted="ro", session=session_id, fault=None)
        self._count(session_id, mounted=1)
        self._publish()
        return volume.stick

    # ------------------------------------------------------------------------------------------- unmount
    def _unmount(self, volume: _Volume, lazy: bool, kill: bool = False) -> bool:
        """Unmount the volume's target (lazily when busy or asked), stop its driver (at once with ``kill``: the
        device is gone, there is nothing left to flush). True when it was busy."""
        target = volume.target
        if target is None:
            return False
        busy = False
        if kill:
            for pid in volume.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if mount_id_of(target) is not None and _libc.umount2(os.fsencode(str(target)), MNT_DETACH if lazy else 0) != 0:
            err = ctypes.get_errno()
            busy = err == errno.EBUSY
            if busy or err != errno.EPERM:
                # a process still holds a file of it: detached from every path now, and its driver stopped, so the
                # holder reads nothing more of the stick (ENOTCONN) and the stick can be pulled out
                _libc.umount2(os.fsencode(str(target)), MNT_DETACH)
                kill = True
            else:  # kioskd is not root: the mount is its own user's, fusermount takes it down
                subprocess.run(
                    ["fusermount3", "-u", *(["-z"] if lazy else []), str(target)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                    timeout=10,
                )
        for pid in volume.pids:  # a clean unmount ends the driver (it has flushed); make sure of it
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                    break
                threading.Event().wait(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        volume.pids, volume.mount_id = [], None
        with contextlib.suppress(OSError):
            target.rmdir()
        volume.target = None
        return busy

    async def eject(self, stick_id: str) -> None:
        volume = self._volumes.get(stick_id)
        if volume is None:
            raise DeviceError("no such stick", where="media", key="media.absent")
        await asyncio.to_thread(self._unmount, volume, False)
        await asyncio.to_thread(os.sync)
        volume.stick = replace(volume.stick, mounted="no", session=None)
        self._publish()

    async def release(self, session_id: str) -> list[str]:
        notes = []
        for volume in list(self._volumes.values()):
            if volume.stick.session != session_id or volume.target is None:
                continue
            if await asyncio.to_thread(self._unmount, volume, False):
                notes.append("a stick was busy: detached lazily")
            volume.stick = replace(volume.stick, mounted="no", session=None)
        self._publish()
        return notes

    def holders(self, session_id: str) -> int:
        """Processes with an open file (``fdinfo``'s ``mnt_id``) on a stick mounted for the session."""
        ids = {v.mount_id for v in self._volumes.values() if v.stick.session == session_id and v.mount_id}
        return len(holders_of(ids)) if ids else 0

    # ------------------------------------------------------------------------------------------- export
    async def export(
        self, stick_id: str, files: Sequence[Path], progress: Callable[[int], None] | None = None
    ) -> ExportResult:
        volume = self._volumes.get(stick_id)
        if volume is None or volume.target is None or volume.stick.session is None:
            return ExportResult(stick_id, 0, 0, "absent")
        session_id = volume.stick.session
        now = dt.datetime.fromtimestamp(self.ctx.clock.wall())
        folder = self.options.export_folder.format(date=now.strftime("%Y-%m-%d"), time=now.strftime("%Hh%M"))
        volume.stick = replace(volume.stick, mounted="rw")
        self._publish()
        try:
            result = await asyncio.to_thread(self._export, volume, list(files), folder, progress)
        finally:
            if not volume.gone and volume.target is not None:
                volume.stick = replace(volume.stick, mounted="ro")
            self._publish()
        self._count(session_id, exported=result.files)
        return result

    def _export(
        self, volume: _Volume, files: list[Path], folder: str, progress: Callable[[int], None] | None
    ) -> ExportResult:
        target = volume.target
        assert target is not None
        done, written, made = 0, 0, ""
        fault: ExportFault | None = None
        self._unmount(volume, lazy=False)
        volume.target = target
        target.mkdir(mode=0o770, exist_ok=True)
        try:
            self._spawn(volume, writable=True)
            need = sum(f.stat().st_size for f in files)
            room = os.statvfs(target)
            # fusefat says 0 blocks, 0 free on FAT32 (most sticks): no size known, the copy's ENOSPC will say "full"
            if room.f_blocks and need + 64 * 1024 * len(files) > room.f_bavail * room.f_frsize:
                raise ExportStopped("full")
            made = _new_folder(target, folder)
            for source in files:
                written += _copy(source, target / made / source.name)
                done += 1
                if progress is not None:
                    progress(done)
                if volume.gone:
                    raise ExportStopped("pulled")
        except ExportStopped as stop:
            fault = stop.fault
        except OSError as exc:
            fault = self._fault_of(exc, volume)
        if fault == "pulled" or volume.gone:
            return ExportResult(volume.stick.id, done, written, "pulled", made)
        # read-only again, and written out: the driver flushes on unmount, the kernel on sync
        self._unmount(volume, lazy=False)
        os.sync()
        volume.target = target
        target.mkdir(mode=0o770, exist_ok=True)
        if volume.group is not None:
            os.chown(target, -1, volume.group)
        try:
            self._spawn(volume, writable=False)
        except (DeviceError, ExportStopped):
            return ExportResult(volume.stick.id, done, written, fault or "io-error", made)
        return ExportResult(volume.stick.id, done, written, fault, made)

    def _fault_of(self, exc: OSError, volume: _Volume) -> ExportFault:
        if volume.gone or (exc.errno in PULLED and not volume.pids_alive()):
            return "pulled"
        if exc.errno == errno.ENOSPC:
            return "full"
        if exc.errno == errno.EPERM and volume.stick.filesystem == "vfat" and volume.mount_id is not None:
            # fusefat answers a write with EPERM when no cluster is free; a locked stick never got this far (its
            # read-write open or mount is refused first, "write-protected")
            return "full"
        if exc.errno in WRITE_PROTECTED:
            return "write-protected"
        return "pulled" if exc.errno in PULLED else "io-error"


def sandboxed(command: list[str], sandbox: Sandbox, user: tuple[int, int] | None) -> list[str]:
    """``command`` (a FUSE driver) as ``user`` with no supplementary group, in a fresh network namespace (it needs
    none); in the van also with CAP_SYS_ADMIN as its only capability, in every set, and no way to gain another.
    kioskd's own user ("own"): as it is, nothing to give away."""
    if user is None or sandbox == "own":
        return command
    ids = [f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups"]
    if sandbox == "sandbox":  # libfuse2 mounts with mount(2) itself when it holds CAP_SYS_ADMIN
        ids += [
            "--inh-caps=-all,+sys_admin",
            "--ambient-caps=-all,+sys_admin",
            "--bounding-set=-all,+sys_admin",
            "--no-new-privs",
        ]
    return ["unshare", "--net", "--", "setpriv", *ids, "--", *command]


def capabilities(pid: int) -> dict[str, int]:
    """A process's capability sets (CapInh, CapPrm, CapEff, CapBnd, CapAmb) from its ``/proc/PID/status``."""
    sets = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name.startswith("Cap"):
                sets[name] = int(value.strip(), 16)
    return sets


def unconfined_reason(pids: Sequence[int], uid: int) -> str | None:
    """Why the driver processes ``pids`` are not confined as ``sandboxed`` asks (None: they are): each runs as
    ``uid`` alone, with no supplementary group, CAP_SYS_ADMIN only in every set, and ``no_new_privs``. Its network
    namespace is not readable by kioskd (another user's), the tests check it."""
    if not pids:
        return "no driver process found"
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            caps = capabilities(pid)
        except OSError:
            return "the driver exited"
        if {int(u) for u in fields.get("Uid", "").split()} != {uid}:
            return "not the driver's user"
        if fields.get("Groups", "").strip():
            return "supplementary groups kept"
        if any(caps.get(name) != 1 << CAP_SYS_ADMIN for name in ("CapPrm", "CapEff", "CapBnd", "CapAmb")):
            return "capabilities other than CAP_SYS_ADMIN"
        if fields.get("NoNewPrivs", "").strip() != "1":
            return "no_new_privs unset"
    return None


def _share(source: Path, gid: int, writable: bool) -> None:
    """The stick's node opened to the driver's group: read-only (0640), or read-write (0660) while an export's
    driver starts. kioskd owns the node (the image's udev rule): the owner may set its mode, and its group to one
    it belongs to, without CAP_CHOWN."""
    want = 0o660 if writable else 0o640
    try:
        st = os.stat(source)
        if st.st_gid != gid:
            os.chown(source, -1, gid)
        if st.st_mode & 0o7777 != want:
            os.chmod(source, want)
    except PermissionError:
        raise DeviceError(
            "the stick's node is not kioskd's to open to its driver",
            where="media",
            action="the image's udev rule 71-kioskd-media.rules (OWNER kiosk, GROUP kiosk-media)",
            key="media.failed",
        ) from None


def _seal(target: Path, writable: bool) -> bool:
    """The mount point at ``target`` remounted ``nosuid,nodev,noexec`` (and ``ro`` unless ``writable``) by kioskd
    itself; False (errno set) when refused."""
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if writable else MS_RDONLY)
    return bool(_libc.mount(None, os.fsencode(str(target)), None, flags, None) == 0)


def _shared(path: Path) -> bool:
    """Whether the mount ``path`` lies on has shared propagation (``shared:N`` in mountinfo's optional fields)."""
    resolved = str(path.resolve())
    best, shared = "", False
    for fields in _mountinfo():
        point = fields[4].replace("\\040", " ")
        if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, shared = point, any(f.startswith("shared:") for f in fields[6 : fields.index("-")])
    return shared


def _staging_parent() -> str:
    # mkdtemp makes a fresh 0700 folder (then 0711) in the parent: no name a local user could have prepared
    for candidate in ("/run", tempfile.gettempdir(), "/tmp"):  # noqa: S108
        path = Path(candidate).resolve()
        try:
            if os.access(path, os.W_OK) and all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents)):
                return str(path)
        except OSError:
            continue
    raise DeviceError("no folder the FUSE driver can reach", where="media", action="chmod o+x /run", key="media.failed")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _new_folder(root: Path, name: str) -> str:
    """A folder that did not exist: ``name``, else ``name (2)``, ``name (3)`` …"""
    for n in range(1, 100):
        candidate = name if n == 1 else f"{name} ({n})"
        try:
            (root / candidate).mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ExportStopped("io-error")


def _copy(source: Path, dest: Path) -> int:
    """One file, synced; a half-written copy is removed (the stick keeps complete files only)."""
    try:
        with open(source, "rb") as src, open(dest, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            with contextlib.suppress(OSError):  # not every FUSE driver implements fsync; the unmount flushes
                os.fsync(out.fileno())
            return out.tell()
    except OSError:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise


def holders_of(mount_ids: set[int]) -> list[int]:
    """Processes with a file open on one of ``mount_ids`` (read from ``/proc/<pid>/fdinfo``, never the names)."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{entry.name}/fdinfo/{fd}", encoding="ascii", errors="replace") as info:
                    for line in info:
                        if line.startswith("mnt_id:") and int(line.split()[1]) in mount_ids:
                            found.append(int(entry.name))
                            break
            except (OSError, ValueError):
                continue
            if found and found[-1] == int(entry.name):
                break
    return found
