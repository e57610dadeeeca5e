"""The webcam (V4L2 through OpenCV): a health check that opens it, grabs a few frames, judges them and releases it,
and the wipe's check that no process still holds it between citizens.

kioskd never keeps the camera open: the session app uses it during a video call, and a health check never fights a
call for it (a camera another program holds is "in use", not opened, not judged). cv2 blocks, so every capture runs
on this device's one worker thread. Nothing here keeps or logs a frame."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field

from kioskd.hal import (
    CameraChanged,
    CameraHealth,
    CameraState,
    DeviceError,
    DriverContext,
    DriverOptions,
    FaultReporter,
)

log = logging.getLogger(__name__)

FAULTS = ("camera.absent", "camera.black", "camera.frozen")


class OpenCvCameraOptions(DriverOptions):
    device: str | int = Field(
        0,
        description="a stable udev path (/dev/v4l/by-id/usb-…-video-index0 or /dev/v4l/by-path/…), or a V4L2 index; "
        "a path outside /dev is opened as a video file (tests, demonstrations)",
    )
    name: str = Field("Caméra", max_length=64, description="what the panel calls it")
    frames: int = Field(8, ge=2, le=100, description="frames grabbed by a health check")
    warmup: int = Field(2, ge=0, le=30, description="frames dropped first (auto-exposure settles)")
    black_level: float = Field(12.0, ge=0, le=255, description="mean luminance under which the picture is black")
    frozen_change: float = Field(
        0.3, ge=0, le=50, description="mean luminance change between frames under which the picture is frozen"
    )
    allowed_holders: list[str] = Field(
        default_factory=list,
        description="command names that may keep the camera open between citizens (e.g. 'pipewire' when its V4L2 "
        "monitor is on); any other holder fails the wipe",
    )


class OpenCvCamera:
    """A ``Camera``. ``health()`` is the check ``kioskctl doctor`` and ``GET /camera/health`` run; a picture that is
    black or frozen is also raised as a device fault, cleared by the next good check."""

    options_model: ClassVar[type[OpenCvCameraOptions]] = OpenCvCameraOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit = ctx.emit
        self._state = CameraState(name=self.options.name)
        self._faults = FaultReporter("camera", ctx.emit)  # each fault told once
        self._worker: ThreadPoolExecutor | None = None

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def node(self) -> Path:
        """The device node (symlinks resolved), or the file, that a holder would have open."""
        device = self.options.device
        if isinstance(device, int) or device.isdigit():
            return Path(f"/dev/video{int(device)}")
        return Path(os.path.realpath(device))

    async def start(self) -> None:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kioskd-camera")
        self._publish(replace(self._state, present=self.node.exists()))

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.shutdown)
        self._publish(replace(self._state, present=False, in_use=False))

    # ------------------------------------------------------------------------------------------- health
    async def health(self) -> CameraHealth:
        if self._worker is None:
            raise DeviceError("the camera backend is not started", where="camera")
        if await asyncio.to_thread(self._held):
            # a call has it (V4L2 gives EBUSY, or a read that never ends): its state, not a fault, and no open
            self._publish(replace(self._state, present=True, in_use=True))
            return CameraHealth(ok=True, present=True, in_use=True)
        self._publish(replace(self._state, in_use=True))
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._worker, self._check)
        finally:
            self._publish(replace(self._state, in_use=False))
        self._publish(replace(self._state, present=result.present))
        for fault in FAULTS:
            self._faults.set(fault, result.fault == fault)
        return result

    def _held(self) -> bool:
        allowed = set(self.options.allowed_holders)
        return any(name not in allowed for _, name in holders_of(self.node))

    def _open(self) -> Any:
        device = self.options.device
        if isinstance(device, int) or device.isdigit():
            return cv2.VideoCapture(int(device), cv2.CAP_V4L2)
        if str(self.node).startswith("/dev/"):
            return cv2.VideoCapture(str(self.node), cv2.CAP_V4L2)
        return cv2.VideoCapture(str(self.node))

    def _check(self) -> CameraHealth:
        """On the worker thread: open, grab, judge, release (always)."""
        started = time.monotonic()
        capture = self._open()
        try:
            if not capture.isOpened():
                return CameraHealth(ok=False, present=False, fault="camera.absent", seconds=_since(started))
            levels: list[float] = []
            previous: np.ndarray[Any, Any] | None = None
            changes: list[float] = []
            width = height = 0
            for index in range(self.options.warmup + self.options.frames):
                grabbed, frame = capture.read()
                if not grabbed or frame is None:
                    break
                if index < self.options.warmup:
                    continue
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                height, width = gray.shape[:2]
                levels.append(float(gray.mean()))
                current = gray.astype(np.int16)
                if previous is not None:
                    changes.append(float(np.abs(current - previous).mean()))
                previous = current
        finally:
            capture.release()
        if len(levels) < 2:  # opened, but no picture comes: as good as absent for a video call
            return CameraHealth(
                ok=False, present=True, frames=len(levels), fault="camera.absent", seconds=_since(started)
            )
        brightness = sum(levels) / len(levels)
        black = brightness < self.options.black_level
        frozen = not black and max(changes) < self.options.frozen_change  # a black picture changes nothing either
        fault = "camera.black" if black else "camera.frozen" if frozen else None
        return CameraHealth(
            ok=fault is None,
            present=True,
            width=width,
            height=height,
            frames=len(levels),
            brightness=round(brightness, 1),
            black=black,
            frozen=frozen,
            fault=fault,
            seconds=_since(started),
        )

    # ------------------------------------------------------------------------------------------- wipe
    async def reset(self) -> None:
        """The wipe handler: kioskd holds nothing between checks; any other process holding the device now is left
        from the session (or spying on the next one): the wipe fails and says which programs."""
        allowed = set(self.options.allowed_holders)
        holders = [h for h in await asyncio.to_thread(holders_of, self.node) if h[1] not in allowed]
        self._publish(replace(self._state, in_use=bool(holders)))
        if holders:
            names = ", ".join(sorted({name for _, name in holders}))
            raise DeviceError(
                f"the camera is still held by {len(holders)} process(es): {names}",
                where="camera",
                key="camera.held",
                action="stop those programs (kioskctl wipe --retry), then call the technician if it persists",
            )

    # ------------------------------------------------------------------------------------------- reports
    def _publish(self, state: CameraState) -> None:
        if state != self._state:
            self._state = state
            self._emit(CameraChanged(state))


def holders_of(node: Path) -> list[tuple[int, str]]:
    """(pid, command name) of every other process with ``node`` open, from /proc/*/fd.

    A process's fd directory is readable only by its own user (or with CAP_SYS_PTRACE, which kioskd does not have):
    kioskd alone would never see the session app's processes, which run as another user. So the directories kioskd
    may not read are scanned again as their owner (CAP_SETUID, which kioskd has to start the session app), by
    ``find`` running as that user: it sees that user's processes and nothing more. Root's processes are not (kioskd
    must not become root), nor a process that made itself undumpable (its /proc directory is root's)."""
    target = os.path.realpath(node)
    me = os.getpid()
    found: dict[int, str] = {}
    hidden: set[int] = set()  # the owners of the fd directories kioskd may not read
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except PermissionError:
            with contextlib.suppress(OSError):  # unless it is gone meanwhile
                hidden.add(entry.stat().st_uid)
            continue
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == target:
                        found[int(entry.name)] = _command(entry.name)
                        break
                except OSError:
                    continue
    for uid in sorted(hidden - {0, os.geteuid()} - _UNREACHABLE_UIDS):
        for pid in _holders_seen_by(uid, target):
            if pid != me:
                found.setdefault(pid, _command(str(pid)))
    return sorted(found.items())


FIND_TIMEOUT = 10.0
_UNREACHABLE_UIDS: set[int] = set()  # users this process cannot become (no CAP_SETUID): told once, not tried again


def _holders_seen_by(uid: int, target: str) -> set[int]:
    """The pids whose fd links point at ``target``, as ``uid`` sees them (``find`` run as that user)."""
    find = shutil.which("find") or "/usr/bin/find"
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", target)  # -lname takes a shell pattern: the path, literally
    command = [find, "/proc", "-mindepth", "3", "-maxdepth", "3", "-path", "/proc/[0-9]*/fd/*"]
    command += ["-lname", pattern, "-printf", "%h\n"]
    try:
        done = subprocess.run(
            command,
            user=uid,
            group=gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=FIND_TIMEOUT,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            cwd="/",
        )
    except PermissionError as exc:
        # without CAP_SETUID (a developer's laptop) this user's processes stay unseen: said once
        _UNREACHABLE_UIDS.add(uid)
        log.warning("cannot look for camera holders among uid %d's processes: %s", uid, exc)
        return set()
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot look for camera holders among uid %d's processes: %s", uid, exc)
        return set()
    # find exits 1 when some directory was unreadable (the other users'): its output still counts
    return {int(line.split("/")[2]) for line in done.stdout.splitlines() if line.count("/") == 3}


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
