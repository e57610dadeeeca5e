"""The session app (for a van: Chromium with its profile in the workspace): started when a session opens,
stopped at the wipe (SIGTERM, then SIGKILL after a grace period).

Every process of a session carries ``KIOSK_SESSION=<id>`` in its environment, so the wipe finds them all, even
after kioskd itself crashed and the app was left running. With an app user (``kiosk-citizen`` in the image) the
app cannot read kioskd's state or token, and every process of that user belongs to the session: kioskd cannot read
another user's environment without ptrace rights, so the user id is the mark there. Its output goes nowhere: it
could carry URLs.

The app is started through ``confine.py`` (a launcher that becomes it): in a mount and IPC namespace of its own,
the PC's file systems read-only, fresh tmpfs on /tmp, /var/tmp, /dev/shm, /run/lock, /run/user, the workspace
bound back writable, no capability left. Its docstring lists every place the app user can still write and why the
list is complete. Without the right to confine (a laptop), the app runs unconfined and ``SessionApp.confined``
says why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from kioskd.errors import ProfileError
from kioskd.hal import Clock
from kioskd.session.workspace import Workspace

log = logging.getLogger(__name__)

MARK = "KIOSK_SESSION"
LAUNCHER = Path(__file__).with_name("confine.py")
LAUNCH_TIMEOUT = 30.0  # seconds for the launcher to confine and exec (it takes tens of milliseconds)


@dataclass(frozen=True)
class AppUser:
    """The session app's user: its ids, and the group it shares the workspace with kioskd through."""

    name: str
    uid: int
    gid: int

    @classmethod
    def lookup(cls, name: str, source: str = "<profile>") -> AppUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ProfileError(
                f"no user {name!r} on this system",
                where=f"{source}: station.app_user",
                action="create it (systemd/kioskd.sysusers creates kiosk-citizen) or remove the key",
            ) from None
        if entry.pw_uid == 0:
            raise ProfileError("the session app must not run as root", where=f"{source}: station.app_user")
        return cls(name, entry.pw_uid, entry.pw_gid)


def session_processes(session_id: str, user: AppUser | None = None) -> list[int]:
    """PIDs of every process carrying this session's mark, or run by the app user (read from /proc)."""
    needle = f"{MARK}={session_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if user is not None and entry.stat().st_uid == user.uid:
                found.append(int(entry.name))
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return [pid for pid in found if pid != os.getpid() and not _zombie(pid)]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def expand(command: list[str], session_id: str, ws: Workspace) -> list[str]:
    """The profile's command with its placeholders filled: {session} {workspace} {home} {downloads} {browser}."""
    values = {
        "session": session_id,
        "workspace": str(ws.root),
        "home": str(ws.home),
        "downloads": str(ws.downloads),
        "browser": str(ws.browser),
        "scans": str(ws.scans),
    }
    return [part.format(**values) for part in command]


def environment(session_id: str, ws: Workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "DISPLAY", "WAYLAND_DISPLAY", "TZ")}
    env.update(
        {
            MARK: session_id,
            "HOME": str(ws.home),
            "TMPDIR": str(ws.tmp),
            "XDG_CONFIG_HOME": str(ws.home / ".config"),
            "XDG_CACHE_HOME": str(ws.home / ".cache"),
            "XDG_DATA_HOME": str(ws.home / ".local" / "share"),
            "XDG_DOWNLOAD_DIR": str(ws.downloads),
            # in the workspace: /run/user is an empty private tmpfs in the app's namespace
            "XDG_RUNTIME_DIR": str(ws.tmp),
        }
    )
    env.setdefault("LANG", "fr_FR.UTF-8")
    return env


class SessionApp:
    def __init__(
        self, command: list[str], grace: float, clock: Clock, user: AppUser | None = None, private_size: str = "1G"
    ) -> None:
        self.command = command
        self.private_size = private_size  # each private tmpfs of the app's namespace (/tmp, /dev/shm …) at most
        self.grace = grace
        self.clock = clock
        self.user = user
        self.process: asyncio.subprocess.Process | None = None
        self.confined: str = ""  # the launcher's word on the last start: "confined", or "unconfined <why>"

    async def start(self, session_id: str, ws: Workspace) -> None:
        if not self.command:
            return
        # the child inherits this thread's signal mask: the daemon blocks SIGPIPE (daemon.py), the app must not
        previous = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGPIPE})
        try:
            self.process = await self._spawn(session_id, ws)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        log.info("session %s: app started (pid %d)", session_id, self.process.pid)

    async def _spawn(self, session_id: str, ws: Workspace) -> asyncio.subprocess.Process:
        """The launcher, which confines itself, becomes the app user and execs the app; its status lines (one
        descriptor, closed by the exec) say how it went before this returns."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        spec = {
            "status_fd": write_end,
            "workspace": str(ws.root),
            "size": self.private_size,
            "cwd": str(ws.home),
            # as the app user: umask 007 keeps what it writes readable by kioskd through the shared group only
            "uid": self.user.uid if self.user else None,
            "gid": self.user.gid if self.user else None,
        }
        launcher = [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--"]
        try:
            process = await asyncio.create_subprocess_exec(
                *launcher,
                *expand(self.command, session_id, ws),
                env=environment(session_id, ws),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the wipe signals all its children at once
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        try:
            status = await asyncio.wait_for(asyncio.to_thread(_read_all, read_end), LAUNCH_TIMEOUT)
        finally:
            os.close(read_end)
        lines = status.splitlines() or ["failed: the launcher ended without a word"]
        if any(line.startswith("failed") for line in lines):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise OSError(0, next(line for line in lines if line.startswith("failed")))
        self.confined = lines[0]
        if self.confined != "confined":
            log.warning("session %s: the app runs %s", session_id, self.confined)
        return process

    async def stop(self, session_id: str) -> None:
        """SIGTERM to every process of the session, SIGKILL to those still there after the grace period."""
        pids = await asyncio.to_thread(session_processes, session_id, self.user)
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        _signal(pids, signal.SIGTERM)
        waited = 0.0
        while pids and waited < self.grace:
            await self.clock.sleep(0.1)
            waited += 0.1
            await self._reap()
            pids = await asyncio.to_thread(session_processes, session_id, self.user)
        if pids:
            log.warning("session %s: %d app process(es) ignored SIGTERM, killing", session_id, len(pids))
            _signal(pids, signal.SIGKILL)
            for _ in range(50):
                await asyncio.sleep(0.02)  # real time: the kernel, not the simulation, delivers SIGKILL
                await self._reap()
                if not await asyncio.to_thread(session_processes, session_id, self.user):
                    break
        await self._reap()
        self.process = None

    async def _reap(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 0.01)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
