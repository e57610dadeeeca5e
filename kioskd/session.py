"""The citizen session: its private workspace, and the wipe that removes everything of it.

A wipe is a set of independent handlers run concurrently, each reporting a verdict and its duration, followed by
a verification. A journal entry (fsync'd) is written before the first handler runs and removed only after the
verification, so a crash or power cut in the middle is finished at the next start. Nothing here logs a path
inside a workspace or a file name from it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kioskd.backends import Devices
from kioskd.hal import Clock

log = logging.getLogger(__name__)

WipeReason = Literal["next", "idle", "power", "end_of_day", "travel", "recovery", "retry"]
WORKSPACE_DIRS = ("home", "downloads", "scans", "browser")


@dataclass
class Session:
    id: str
    workspace: Path
    opened_at: float  # wall
    print_count: int = 0

    @property
    def home(self) -> Path:
        return self.workspace / "home"

    @property
    def downloads(self) -> Path:
        return self.workspace / "downloads"

    @property
    def scans(self) -> Path:
        return self.workspace / "scans"

    @property
    def browser(self) -> Path:
        return self.workspace / "browser"

    def counts(self) -> dict[str, int]:
        """Files in scans and downloads (counts only: names never leave this object)."""
        return {
            "scans": _count_files(self.scans),
            "downloads": _count_files(self.downloads),
        }


def _count_files(path: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(path) if entry.is_file(follow_symlinks=False))
    except OSError:
        return 0


@dataclass(frozen=True)
class HandlerVerdict:
    name: str
    ok: bool
    seconds: float
    reason: str = ""  # why it failed, in a technician's words; never a citizen's file name


@dataclass
class WipeOutcome:
    session: str
    reason: WipeReason
    started: float
    finished: float = 0.0
    verdicts: list[HandlerVerdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what verification found

    @property
    def verified(self) -> bool:
        return all(v.ok for v in self.verdicts) and not self.problems

    def failed_handlers(self) -> list[str]:
        return [v.name for v in self.verdicts if not v.ok] + (["verification"] if self.problems else [])


Handler = Callable[[], Awaitable[None]]


class Sessions:
    """Opens sessions in ``root`` (one private directory each) and wipes them, journalled in ``state_dir``."""

    def __init__(self, root: Path, state_dir: Path, devices: Devices, clock: Clock, retries: int = 1) -> None:
        self.root = root
        self.journal_dir = state_dir / "wipe-journal"
        self.devices = devices
        self.clock = clock
        self.retries = retries
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)

    # ------------------------------------------------------------------------------------------- open
    def open(self) -> Session:
        session_id = secrets.token_hex(4)
        workspace = self.root / session_id
        workspace.mkdir(mode=0o700)
        for name in WORKSPACE_DIRS:
            (workspace / name).mkdir(mode=0o700)
        self._journal_write(session_id, {"session": session_id, "phase": "open", "workspace": session_id})
        log.info("session %s opened", session_id)
        return Session(session_id, workspace, self.clock.wall())

    # ------------------------------------------------------------------------------------------- journal
    def _journal_write(self, session_id: str, entry: dict[str, str]) -> None:
        path = self.journal_dir / f"{session_id}.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.journal_dir)

    def _journal_clear(self, session_id: str) -> None:
        (self.journal_dir / f"{session_id}.json").unlink(missing_ok=True)
        _fsync_dir(self.journal_dir)

    def pending(self) -> list[str]:
        """Sessions that were opened or being wiped and never verified clean, plus stray workspaces."""
        found = {p.stem for p in self.journal_dir.glob("*.json")}
        found |= {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.exists() else set()
        return sorted(found)

    # ------------------------------------------------------------------------------------------- wipe
    def handlers(self, session_id: str) -> dict[str, Handler]:
        workspace = self.root / session_id
        devices = self.devices

        async def printer() -> None:
            await devices.printer.cancel_jobs(session_id)
            await devices.printer.purge_jobs(session_id)

        async def workspace_files() -> None:
            await asyncio.to_thread(_remove_tree, workspace)

        return {
            "print_jobs": printer,
            "audio": devices.audio.reset,
            "camera": devices.camera.reset,
            "workspace": workspace_files,
        }

    async def wipe(self, session_id: str, reason: WipeReason) -> WipeOutcome:
        """Run every handler (concurrently, each retried once), then verify; the journal closes only if clean."""
        self._journal_write(session_id, {"session": session_id, "phase": "wiping", "reason": reason})
        outcome = WipeOutcome(session_id, reason, self.clock.wall())
        handlers = self.handlers(session_id)
        outcome.verdicts = list(await asyncio.gather(*(self._run(n, h) for n, h in handlers.items())))
        outcome.problems = await self.verify(session_id)
        outcome.finished = self.clock.wall()
        if outcome.verified:
            self._journal_clear(session_id)
            log.info("session %s wiped (%s) and verified", session_id, reason)
        else:
            log.error("session %s wipe incomplete: %s", session_id, ", ".join(outcome.failed_handlers()))
        return outcome

    async def _run(self, name: str, handler: Handler) -> HandlerVerdict:
        start = self.clock.monotonic()
        reason = ""
        for _attempt in range(1 + self.retries):
            try:
                await handler()
                return HandlerVerdict(name, True, self.clock.monotonic() - start)
            except Exception as exc:  # a handler's failure is a verdict, never a crash
                reason = f"{type(exc).__name__}: {_safe(exc)}"
        return HandlerVerdict(name, False, self.clock.monotonic() - start, reason)

    async def verify(self, session_id: str) -> list[str]:
        problems: list[str] = []
        workspace = self.root / session_id
        if workspace.exists():
            problems.append("workspace still exists")
        try:
            problems += list(await self.devices.printer.verify_purged(session_id))
        except Exception as exc:
            problems.append(f"printer verification failed: {type(exc).__name__}")
        return problems


def _safe(exc: Exception) -> str:
    """An exception's message without paths (they could name a citizen's file)."""
    if isinstance(exc, OSError):
        return exc.strerror or "OS error"
    return str(exc).split("/", 1)[0][:200]


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
