"""The citizen session and the wipe that removes everything of it.

A wipe runs independent handlers, each reporting a verdict and its duration (retried once on failure), in three
stages: the session app first (nothing may write while we clean), then the browser profile, downloads, scans,
print jobs, clipboard, audio and camera concurrently, then the workspace itself. Verification follows: the
workspace is gone, no process of the session survives, the printer lists no job of it. A journal entry (fsync'd)
is written before the first handler and removed only after verification, so a crash or power cut in the middle
is finished at the next start. A receipt (no personal data) goes to the store.

Fault injection for the crash tests: ``KIOSKD_FAULT_WIPE=<stage>`` makes the daemon kill itself (SIGKILL) right
after that stage: journal, app, handlers, workspace, verified. Nothing here logs a path inside a workspace."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from kioskd import workspace as ws_ops
from kioskd.hal import JOB_FINISHED, Clock, Devices
from kioskd.profile import ActivityConfig, StationConfig
from kioskd.session_app import AppUser, SessionApp, session_processes
from kioskd.stats import local_slot
from kioskd.store import Activity, Receipt, Store
from kioskd.workspace import Workspace

log = logging.getLogger(__name__)

WipeReason = Literal["next", "idle", "power", "end_of_day", "travel", "recovery", "retry"]
Handler = Callable[[], Awaitable[None]]


@dataclass
class Session:
    id: str
    workspace: Workspace
    opened_at: float  # wall
    print_count: int = 0  # documents kioskd sent (numbers the anonymous titles)
    job_ids: set[int] = field(default_factory=set)  # every print job of the session, the app's own included

    def counts(self) -> dict[str, int]:
        """Files in scans and downloads (counts only: names never leave this object)."""
        return self.workspace.counts()


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


class Sessions:
    """Opens sessions under ``root`` (one workspace each) and wipes them, journalled in ``state_dir``."""

    def __init__(
        self,
        root: Path,
        state_dir: Path,
        devices: Devices,
        clock: Clock,
        config: StationConfig | None = None,
        store: Store | None = None,
        retries: int = 1,
        activity: ActivityConfig | None = None,
    ) -> None:
        self.root = root
        self.activity = activity or ActivityConfig()
        self.journal_dir = state_dir / "wipe-journal"
        self.devices = devices
        self.clock = clock
        self.config = config or StationConfig()
        self.store = store
        self.retries = retries
        self.open_sessions: dict[str, Session] = {}
        self.app_user = AppUser.lookup(self.config.app_user) if self.config.app_user else None
        self._as_user = (self.app_user.uid, self.app_user.gid) if self.app_user else None
        self.app = SessionApp(self.config.app, self.config.app_grace, clock, self.app_user)
        if self.config.app and len(str(root)) > 60:
            # the app's TMPDIR is <root>/<id>/tmp: a unix socket there (Chromium's singleton) must fit in 107 bytes
            log.warning("the runtime directory's path is long (%d bytes): the session app may fail", len(str(root)))
        for path in (self.root, self.journal_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(path, 0o700)
        if self.app_user is not None:
            os.chmod(self.root, 0o711)  # the app's user traverses to its own workspace; nobody lists the sessions

    # ------------------------------------------------------------------------------------------- open
    async def open(self, stop: str | None = None) -> Session:
        """A new session at ``stop`` (where the van stands, for the office's figures; None when unnamed)."""
        session_id = secrets.token_hex(4)
        opened = self.clock.wall()
        # journal first: a power cut between here and the first file written still leaves a wipe to do
        entry = {"session": session_id, "phase": "open", "opened_at": opened, "stop": stop}
        self._journal_write(session_id, entry)
        workspace = await ws_ops.create(
            self.root / session_id,
            self.config.workspace,
            self.config.workspace_size,
            self.app_user.gid if self.app_user else None,
        )
        session = Session(session_id, workspace, opened)
        self.open_sessions[session_id] = session
        try:  # before the app: a video call must find the headset and an open microphone
            await self.devices.audio.session_start()
        except Exception as exc:  # the citizen is served anyway; the backend's fault notice says what is missing
            log.warning("session %s: audio not ready: %s", session_id, type(exc).__name__)
        try:
            await self.app.start(session_id, workspace)
        except OSError as exc:
            log.error("session %s: the session app did not start: %s", session_id, exc.strerror)
        log.info("session %s opened (%s workspace)", session_id, workspace.kind)
        return session

    # ------------------------------------------------------------------------------------------- journal
    def _journal_path(self, session_id: str) -> Path:
        return self.journal_dir / f"{session_id}.json"

    def _journal_write(self, session_id: str, entry: dict[str, object]) -> None:
        path = self._journal_path(session_id)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.journal_dir)

    def _journal_read(self, session_id: str) -> dict[str, object]:
        try:
            data = json.loads(self._journal_path(session_id).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _journal_clear(self, session_id: str) -> None:
        self._journal_path(session_id).unlink(missing_ok=True)
        _fsync_dir(self.journal_dir)

    def pending(self) -> list[str]:
        """Sessions opened or being wiped and never verified clean, plus stray workspaces (power cut)."""
        found = {p.stem for p in self.journal_dir.glob("*.json")}
        found |= {p.stem for p in self.journal_dir.glob("*.tmp")}
        if self.root.exists():
            found |= {p.name for p in self.root.iterdir()}
        return sorted(found)

    # ------------------------------------------------------------------------------------------- wipe
    def _stages(self, session_id: str, reason: WipeReason) -> list[dict[str, Handler]]:
        root = self.root / session_id
        devices = self.devices
        grace = 0.0 if reason in ("recovery", "retry") else self.config.print_grace

        async def app() -> None:
            await self.app.stop(session_id)

        async def print_jobs() -> None:
            waited = 0.0
            while waited < grace:  # the citizen is still waiting for the paper
                jobs = await devices.printer.jobs(session_id)
                if all(job.state in JOB_FINISHED for job in jobs):
                    break
                await self.clock.sleep(1.0)
                waited += 1.0
            await devices.printer.cancel_jobs(session_id)
            await devices.printer.purge_jobs(session_id)

        def clear(sub: str) -> Handler:
            async def run() -> None:
                await ws_ops.clear(root / sub, self._as_user)

            return run

        async def workspace() -> None:
            await ws_ops.remove(root, self._as_user)

        return [
            {"app": app},
            {
                "browser": clear("browser"),
                "downloads": clear("downloads"),
                "scans": clear("scans"),
                "print_jobs": print_jobs,
                "clipboard": devices.displays.clear_clipboard,
                "audio": devices.audio.reset,
                "camera": devices.camera.reset,
            },
            {"workspace": workspace},
        ]

    async def wipe(self, session_id: str, reason: WipeReason) -> WipeOutcome:
        """Every handler, stage by stage, then verification; the journal closes only when the wipe is clean."""
        journal = self._journal_read(session_id)
        session = self.open_sessions.get(session_id)
        counts = session.counts() if session else {"scans": 0, "downloads": 0}
        self._journal_write(session_id, {**journal, "session": session_id, "phase": "wiping", "reason": reason})
        _fault("journal")
        outcome = WipeOutcome(session_id, reason, self.clock.wall())
        for number, stage in enumerate(self._stages(session_id, reason)):
            verdicts = await asyncio.gather(*(self._run(name, handler) for name, handler in stage.items()))
            outcome.verdicts.extend(verdicts)
            _fault(("app", "handlers", "workspace")[number])
        outcome.problems = await self.verify(session_id)
        outcome.finished = self.clock.wall()
        _fault("verified")
        if outcome.verified:
            self._journal_clear(session_id)
            self.open_sessions.pop(session_id, None)
            log.info("session %s wiped (%s) and verified", session_id, reason)
        else:
            log.error("session %s wipe incomplete: %s", session_id, ", ".join(outcome.failed_handlers()))
        if self.store is not None:
            opened = journal.get("opened_at")
            visit = self._visit(journal, outcome, counts, session)
            if visit is not None and not outcome.verified:
                # a failed wipe is retried: the visit it ended is counted once, by this first attempt
                self._journal_write(session_id, {**journal, "phase": "wiping", "reason": reason, "counted": True})
            await self.store.add_receipt(
                Receipt(
                    session=session_id,
                    opened_at=float(opened) if isinstance(opened, int | float) else None,
                    closed_at=outcome.finished,
                    reason=reason,
                    verified=outcome.verified,
                    handlers=[asdict(v) for v in outcome.verdicts],
                    problems=outcome.problems,
                    scans=counts["scans"],
                    downloads=counts["downloads"],
                    prints=len(session.job_ids) if session else 0,
                ),
                visit,
            )
        return outcome

    def _visit(
        self, journal: dict[str, object], outcome: WipeOutcome, counts: dict[str, int], session: Session | None
    ) -> Activity | None:
        """The visit this wipe ends, for the office's figures; None when already counted or its start is unknown
        (a stray workspace without journal)."""
        opened = journal.get("opened_at")
        if journal.get("counted") or not isinstance(opened, int | float):
            return None
        stop = journal.get("stop")
        day, hour = local_slot(float(opened), self.activity.timezone)
        return Activity(
            stop=stop if isinstance(stop, str) else None,
            day=day,
            hour=hour,
            opened_at=float(opened),
            seconds=round(max(0.0, outcome.started - float(opened)), 1),
            scans=counts["scans"],
            prints=len(session.job_ids) if session else 0,
            reason=outcome.reason,
        )

    async def _run(self, name: str, handler: Handler) -> HandlerVerdict:
        start = self.clock.monotonic()
        reason = ""
        for _attempt in range(1 + self.retries):
            try:
                await handler()
                return HandlerVerdict(name, True, round(self.clock.monotonic() - start, 4))
            except Exception as exc:  # a handler's failure is a verdict, never a crash
                reason = f"{type(exc).__name__}: {_safe(exc)}"
        return HandlerVerdict(name, False, round(self.clock.monotonic() - start, 4), reason)

    async def verify(self, session_id: str) -> list[str]:
        problems = ws_ops.leftovers(self.root / session_id)
        survivors = await asyncio.to_thread(session_processes, session_id, self.app_user)
        if survivors:
            problems.append(f"{len(survivors)} process(es) of the session still running")
        try:
            problems += list(await self.devices.printer.verify_purged(session_id))
        except Exception as exc:
            problems.append(f"printer verification failed: {type(exc).__name__}")
        return problems


def _fault(stage: str) -> None:
    if os.environ.get("KIOSKD_FAULT_WIPE") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _safe(exc: Exception) -> str:
    """An exception's message without paths (they could name a citizen's file)."""
    if isinstance(exc, OSError):
        return exc.strerror or "OS error"
    return str(exc).split("/", 1)[0][:200]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
