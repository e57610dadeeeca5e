"""The citizen's USB stick rules: outside a session nothing is mounted; in a session a stick is mounted read-only in
the session's workspace (``media/cle-N``), where the session app's file picker finds it; the agent copies the
session's scans onto it and ejects it. The panel sees label, size and file system, never a file name.

It drives any ``kioskd.hal.Media``; no driver, no FUSE here. The wipe's ``media`` handler unmounts what is left."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kioskd import messages
from kioskd.errors import DeviceError, TransitionRefused
from kioskd.hal import Event, ExportResult, Media, MediaChanged, MediaInserted, MediaRemoved, MediaState, Stick
from kioskd.policies.base import Policy

if TYPE_CHECKING:
    from kioskd.session import Session
    from kioskd.station.snapshot import Level

log = logging.getLogger(__name__)

MEDIA_FOLDER = "media"  # the workspace's folder the sticks are mounted in (kioskd.session.workspace.SUBDIRS)
EXPORT_MESSAGES = {
    None: "media.exported",
    "full": "media.export.full",
    "write-protected": "media.export.write_protected",
    "pulled": "media.export.pulled",
    "absent": "media.export.absent",
    "io-error": "media.export.io_error",
}


@dataclass(frozen=True)
class StickView:
    """One stick as the panel shows it: no file names, no mount path."""

    label: str
    size: int
    filesystem: str
    mounted: str  # no, ro, rw
    fault: str | None = None

    def to_json(self) -> dict[str, Any]:
        key = {"ro": "media.mounted_ro", "rw": "media.mounted_rw"}.get(self.mounted, "media.plugged")
        if self.fault is not None:
            key = f"media.{self.fault}"
        size = size_text(self.size)
        return {
            **dataclasses.asdict(self),
            **messages.both(key, label=self.label or "—", size=size),
            "size_text": {"fr": size.fr, "en": size.en},  # for kioskctl status's own line
        }


@dataclass(frozen=True)
class MediaView:
    sticks: tuple[StickView, ...] = ()

    @classmethod
    def of(cls, state: MediaState) -> MediaView:
        return cls(tuple(StickView(s.label, s.size, s.filesystem, s.mounted, s.fault) for s in state.sticks))

    def to_json(self) -> dict[str, Any]:
        return {"sticks": [s.to_json() for s in self.sticks]}


class MediaPolicy(Policy):
    events = (MediaInserted, MediaRemoved, MediaChanged)

    def __init__(self, media: Media | None) -> None:
        self.media = media
        self._mounting: set[str] = set()
        # sticks that were there when the last session closed: the previous citizen's, never mounted for the next
        self._left_behind: set[str] = set()

    # ------------------------------------------------------------------------------------------- events
    def on_event(self, event: Event) -> None:
        if isinstance(event, MediaChanged):
            self.outlet.show(media=MediaView.of(event.state))
        elif isinstance(event, MediaInserted):
            self._left_behind.discard(event.stick.id)
            if self.outlet.session is not None and self.outlet.state.mode == "in_session":
                self.outlet.spawn(self._mount(event.stick))
            else:
                self.outlet.notice("media", "media.outside_session")
        elif isinstance(event, MediaRemoved):
            self._left_behind.discard(event.stick.id)
            if not event.ejected:
                self.outlet.notice("media", "media.pulled", "warning")
            else:
                self.outlet.clear_notice("media")

    def session_opened(self) -> None:
        """A session is open: mount the sticks already plugged in."""
        if self.media is None:
            return
        for stick in self.media.state.sticks:
            if stick.id in self._left_behind:
                self.outlet.notice("media", "media.left_behind", "warning")
            elif stick.mounted == "no":
                self.outlet.spawn(self._mount(stick))

    def session_closing(self) -> None:
        if self.media is not None:
            self._left_behind = {stick.id for stick in self.media.state.sticks}

    async def _mount(self, stick: Stick) -> None:
        session = self.outlet.session
        if self.media is None or session is None or stick.id in self._mounting:
            return
        self._mounting.add(stick.id)
        try:
            if not stick.supported:
                self.outlet.notice("media", f"media.{stick.fault or 'unsupported'}", "warning")
                return
            target = await asyncio.to_thread(_mount_point, session)
            group = await asyncio.to_thread(_share_group, session.workspace.root)
            mounted = await self.media.mount(stick.id, target, session.id, group)
            self.outlet.notice("media", "media.mounted_ro", label=mounted.label or "—", size=size_text(mounted.size))
            log.info("session %s: a stick is mounted read-only (%s)", session.id, mounted.filesystem)
        except DeviceError as exc:
            self.outlet.notice("media", exc.key or "media.failed", "warning")
        finally:
            self._mounting.discard(stick.id)

    # ------------------------------------------------------------------------------------------- commands
    def _mounted(self) -> Stick:
        session = self.outlet.session
        if self.media is None or session is None:
            raise TransitionRefused("no citizen session", where="media", key="refused.no_session")
        for stick in self.media.state.sticks:
            if stick.session == session.id and stick.mounted != "no":
                return stick
        raise TransitionRefused("no stick mounted", where="media", key="media.none")

    async def export(self, names: list[str] | None) -> dict[str, Any]:
        """The session's scans (``names`` of them, or all) onto the stick, in a new folder."""
        stick = self._mounted()
        session = self.outlet.session
        assert session is not None and self.media is not None
        scans = session.workspace.scans
        available = {p.name: p for p in await asyncio.to_thread(lambda: sorted(scans.glob("*.pdf")))}
        if names:
            unknown = [n for n in names if n not in available]
            if unknown:
                raise TransitionRefused(
                    "unknown scan", where="media", key="api.bad_request", params={"detail": "unknown scan"}
                )
            files = [available[n] for n in names]
        else:
            files = list(available.values())
        if not files:
            raise TransitionRefused("nothing to export", where="media", key="media.nothing")
        self.outlet.touch()
        result: ExportResult = await self.media.export(stick.id, files)
        key = EXPORT_MESSAGES[result.fault]
        level: Level = "info" if result.fault is None else "warning"
        self.outlet.notice("media", key, level, files=result.files, folder=result.folder)
        log.info("session %s: %d scan(s) exported to a stick (%s)", session.id, result.files, result.fault or "ok")
        return {
            "ok": result.fault is None,
            "files": result.files,
            "bytes": result.bytes,
            "folder": result.folder,
            "fault": result.fault,
            "message": messages.both(key, files=result.files, folder=result.folder),
        }

    async def eject(self) -> dict[str, Any]:
        stick = self._mounted()
        assert self.media is not None
        await self.media.eject(stick.id)
        self.outlet.notice("media", "media.ejected")
        return {"ok": True, "message": messages.both("media.ejected")}


def size_text(size: int) -> messages.Message:
    """A stick's size as each language writes it: "1,2 Go" in French, "1.2 GB" in English (decimal units, as
    sticks are sold)."""
    if size >= 1e8:
        n = f"{size / 1e9:.1f}"
        return messages.Message(
            messages.text("media.size.gb", "fr", n=n.replace(".", ",")), messages.text("media.size.gb", "en", n=n)
        )
    n = f"{size / 1e6:.0f}"
    return messages.Message(messages.text("media.size.mb", "fr", n=n), messages.text("media.size.mb", "en", n=n))


def _mount_point(session: Session) -> Path:
    """A fresh ``media/cle-N`` folder of the session's workspace (the name is kioskd's, never the stick's label)."""
    folder = session.workspace.root / MEDIA_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    n = 1
    while (folder / f"cle-{n}").exists():
        n += 1
    return folder / f"cle-{n}"


def _share_group(root: Path) -> int | None:
    """The session app's group when the workspace is shared with it (2770), else None."""
    info = os.stat(root)
    return info.st_gid if info.st_mode & 0o070 else None
