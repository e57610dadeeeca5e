"""The removable-media contract: the citizen's USB sticks (their state, events) and what may be done with one
(mount it for a session, export files to it, eject it).

A stick's state carries its label, size and file system, never a file name; what to mount and when is the media
policy's, how (FUSE drivers in a sandbox) the backend's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from kioskd.hal.base import Device, DriverOptions, Event

FsType = Literal["vfat", "exfat", "ntfs"]
Mounted = Literal["no", "ro", "rw"]
# why an export stopped: the stick is full, write-protected, was pulled out, or is not mounted at all
ExportFault = Literal["full", "write-protected", "pulled", "absent", "io-error"]


class MediaOptions(DriverOptions):
    """``[media]``: which file systems are mounted at all, how the export folder is named, who runs the drivers."""

    filesystems: tuple[FsType, ...] = ("vfat", "exfat", "ntfs")
    # the folder an export creates on the stick; {date} and {time} are the station's local date and time
    export_folder: str = Field(default="Scans {date} {time}", min_length=1, pattern=r"^[^/\\\x00-\x1f]+$")
    # the unprivileged user the FUSE drivers run as (never root, never kioskd's own): it holds no right but reading
    # the stick's node; in the van, kiosk-media, with CAP_SYS_ADMIN alone (libfuse2 mounts with it); nobody when
    # kioskd is root (tests), with no capability, mounting through the setuid fusermount
    fuse_user: str = Field(default="nobody", min_length=1)
    udev: bool = True  # watch udev for USB sticks (the simulated van feeds its own instead)


@dataclass(frozen=True)
class Stick:
    """One removable volume: ``id`` is the backend's (a device number, ``sim-1``), never shown to the citizen."""

    id: str
    label: str = ""
    size: int = 0  # bytes
    filesystem: str = ""  # as probed: vfat, exfat, ntfs, or what we refuse to mount
    mounted: Mounted = "no"
    session: str | None = None  # the session it is mounted for
    supported: bool = True  # a file system we mount
    fault: str | None = None  # "corrupt", "unsupported" …: why it is not mounted


@dataclass(frozen=True)
class MediaState:
    sticks: tuple[Stick, ...] = ()

    def stick(self, stick_id: str) -> Stick | None:
        return next((s for s in self.sticks if s.id == stick_id), None)


@dataclass(frozen=True)
class MediaChanged(Event):
    state: MediaState


@dataclass(frozen=True)
class MediaInserted(Event):
    stick: Stick


@dataclass(frozen=True)
class MediaRemoved(Event):
    stick: Stick
    ejected: bool  # False: pulled out while mounted (or before the eject finished)


@dataclass(frozen=True)
class ExportResult:
    stick: str
    files: int  # files written completely and synced
    bytes: int
    fault: ExportFault | None = None
    folder: str = ""  # the new folder's name on the stick (kioskd chose it: a date, no citizen data)


@dataclass(frozen=True)
class Tally:
    """What a session did with removable media, for its receipt (counts only)."""

    mounted: int = 0
    exported: int = 0


@runtime_checkable
class Media(Device, Protocol):
    """The citizen's removable media (USB mass storage).

    MUST: ``state``; ``mount`` read-only, ``nosuid,nodev,noexec``, at ``target`` (inside the session's workspace),
    readable by the session app's user and nobody else; ``export`` into a new folder (read-write only meanwhile,
    synced, read-only again), never touching the stick's own files; ``eject``; ``release`` (unmount, lazily when
    busy) and ``holders`` for the wipe; ``tally`` for its receipt. MAY: refuse a file system (``supported``)."""

    @property
    def state(self) -> MediaState: ...

    async def mount(self, stick_id: str, target: Path, session_id: str, group: int | None) -> Stick:
        """Mount read-only at ``target`` for ``session_id`` (its files readable by ``group``); raises DeviceError."""
        ...

    async def export(
        self,
        stick_id: str,
        files: Sequence[Path],
        progress: Callable[[int], None] | None = None,
    ) -> ExportResult:
        """Copy ``files`` into a new folder on the stick; a fault is a result (with the files done before it)."""
        ...

    async def eject(self, stick_id: str) -> None:
        """Unmount (cleanly: the stick may be pulled afterwards)."""
        ...

    async def release(self, session_id: str) -> list[str]:
        """Unmount everything mounted for ``session_id`` (lazily when busy); the problems left, in words."""
        ...

    def holders(self, session_id: str) -> int:
        """Processes holding a file or a working directory on a stick mounted for ``session_id``."""
        ...

    def tally(self, session_id: str) -> Tally: ...
