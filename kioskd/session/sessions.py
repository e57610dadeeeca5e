"""Citizen sessions: each opens a workspace (journalled first) and the session app, and ends only through a wipe.

A wipe journals its phase (fsync'd) before the first handler, runs the registered handlers stage by stage
(``wipe``), verifies (``verify``) and clears the journal only when the session is gone, so a crash or power cut in
the middle is finished at the next start. Its outcome carries the receipt (``receipt``): the recorder writes it,
this module writes nothing to the store. Nothing here logs a path inside a workspace.

A full or failing state disk never stops a wipe: the journal entry written when the session opened marks it pending
until it is verified, so a wipe whose own journal write fails goes on (the outcome says so); what needs a journal
it cannot write, a new session, is refused (``StorageError``)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kioskd.errors import StorageError, WipeError
from kioskd.hal import Clock, Devices, Tally
from kioskd.profile import StationConfig
from kioskd.session import receipt as receipts
from kioskd.session import workspace as ws_ops
from kioskd.session.app import AppUser, SessionApp
from kioskd.session.journal import Journal
from kioskd.session.verify import verify
from kioskd.session.wipe import WipeContext, WipeHandlers, WipeOutcome, WipeReason, fault, run_stage, standard_handlers
from kioskd.session.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class Session:
    id: str
    workspace: Workspace
    opened_at: float  # wall
    print_count: int = 0  # documents kioskd sent (numbers the anonymous titles)
    job_ids: set[int] = field(default_factory=set)  # every print job of the session, the app's own included
    confined: str = ""  # the app's launcher's word: "confined", "unconfined <why>", "" without an app

    def counts(self) -> dict[str, int]:
        """Files in scans and downloads (counts only: names never leave this object)."""
        return self.workspace.counts()


class Sessions:
    """Opens sessions under ``root`` (one workspace each) and wipes them, journalled in ``state_dir``."""

    def __init__(
        self,
        root: Path,
        state_dir: Path,
        devices: Devices,
        clock: Clock,
        config: StationConfig | None = None,
        handlers: WipeHandlers | None = None,
        retries: int = 1,
    ) -> None:
        self.root = root
        self.journal_dir = state_dir / "wipe-journal"
        self.journal = Journal(self.journal_dir)
        self.devices = devices
        self.clock = clock
        self.config = config or StationConfig()
        self.handlers = handlers or standard_handlers()
        self.retries = retries
        self.open_sessions: dict[str, Session] = {}
        self.app_user = AppUser.lookup(self.config.app_user) if self.config.app_user else None
        self._as_user = (self.app_user.uid, self.app_user.gid) if self.app_user else None
        self.app = SessionApp(
            self.config.app, self.config.app_grace, clock, self.app_user, private_size=self.config.workspace_size
        )
        if self.config.app and len(str(root)) > 60:
            # the app's TMPDIR is <root>/<id>/tmp: a unix socket there (Chromium's singleton) must fit in 107 bytes
            log.warning("the runtime directory's path is long (%d bytes): the session app may fail", len(str(root)))
        self.journal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.journal_dir.stat().st_mode & 0o777 != 0o700:  # only when needed: the disk may be read-only
            os.chmod(self.journal_dir, 0o700)
        self._make_root()

    def _make_root(self) -> None:
        """The sessions' folder, made again when it was deleted under the running daemon (its runtime dir too)."""
        if not self.root.parent.is_dir():
            self.root.parent.mkdir(parents=True, mode=0o700)
            if self.app_user is not None:
                os.chmod(self.root.parent, 0o751)  # as the daemon makes it: others only traverse
            log.warning("the runtime directory was gone: made again")
        self.root.mkdir(exist_ok=True, mode=0o700)
        # the app's user traverses to its own workspace; nobody lists the sessions
        os.chmod(self.root, 0o700 if self.app_user is None else 0o711)

    # ------------------------------------------------------------------------------------------- open
    async def open(self, stop: str | None = None) -> Session:
        """A new session at ``stop`` (where the van stands, for the office's figures; None when unnamed)."""
        session_id = secrets.token_hex(4)
        opened = self.clock.wall()
        # journal first: a power cut between here and the first file written still leaves a wipe to do; without
        # one (a full state disk) no session opens, as nothing would mark it pending after a power cut
        try:
            self.journal.write(session_id, {"session": session_id, "phase": "open", "opened_at": opened, "stop": stop})
        except OSError as exc:
            what = exc.strerror or type(exc).__name__
            raise StorageError(
                f"the wipe journal cannot be written: {what}",
                where="state directory",
                action="free some space in the state directory",
                key="refused.journal",
                params={"problem": what},
            ) from None
        try:
            self._make_root()
            workspace = await ws_ops.create(
                self.root / session_id,
                self.config.workspace,
                self.config.workspace_size,
                self.app_user.gid if self.app_user else None,
            )
        except (OSError, WipeError) as exc:
            # nothing of the session exists: its entry goes, or each refused attempt would leave one behind
            with contextlib.suppress(OSError, WipeError):
                await ws_ops.remove(self.root / session_id)
            with contextlib.suppress(OSError):
                self.journal.clear(session_id)
            if isinstance(exc, WipeError):
                raise
            what = exc.strerror or type(exc).__name__
            raise StorageError(
                f"the session's workspace cannot be made: {what}",
                where="runtime directory",
                action="restart kioskd",
                key="refused.workspace",
                params={"problem": what},
            ) from None
        session = Session(session_id, workspace, opened)
        self.open_sessions[session_id] = session
        try:  # before the app: a video call must find the headset and an open microphone
            await self.devices.audio.session_start()
        except Exception as exc:  # the citizen is served anyway; the backend's fault notice says what is missing
            log.warning("session %s: audio not ready: %s", session_id, type(exc).__name__)
        try:
            await self.app.start(session_id, workspace)
            session.confined = self.app.confined
        except OSError as exc:
            log.error("session %s: the session app did not start: %s", session_id, exc.strerror)
        log.info("session %s opened (%s workspace)", session_id, workspace.kind)
        return session

    def pending(self) -> list[str]:
        """Sessions opened or being wiped and never verified clean, plus stray workspaces (power cut)."""
        found = self.journal.sessions()
        if self.root.exists():
            found |= {p.name for p in self.root.iterdir()}
        return sorted(found)

    # ------------------------------------------------------------------------------------------- wipe
    async def wipe(self, session_id: str, reason: WipeReason) -> WipeOutcome:
        """Every handler, stage by stage, then verification; the journal closes only when the wipe is clean."""
        journal = self.journal.read(session_id)
        session = self.open_sessions.get(session_id)
        counts = session.counts() if session else {"scans": 0, "downloads": 0}
        prints = len(session.job_ids) if session else 0
        tally = self.devices.media.tally(session_id) if self.devices.media is not None else None
        outcome = WipeOutcome(session_id, reason, self.clock.wall())
        try:
            self.journal.write(session_id, {**journal, "session": session_id, "phase": "wiping", "reason": reason})
        except OSError as exc:  # the entry of the session's opening still marks it pending: wipe all the same
            outcome.journal = exc.strerror or type(exc).__name__
            log.error("session %s: the wipe journal cannot be written (%s): wiping anyway", session_id, outcome.journal)
        fault("journal")
        context = WipeContext(
            session_id=session_id,
            root=self.root / session_id,
            reason=reason,
            devices=self.devices,
            clock=self.clock,
            app=self.app,
            as_user=self._as_user,
            print_grace=0.0 if reason in ("recovery", "retry") else self.config.print_grace,
        )
        for stage, handlers in self.handlers.stages():
            outcome.verdicts.extend(await run_stage(handlers, context, self.retries))
            fault(stage)
        outcome.problems = await self.verify(session_id)
        outcome.finished = self.clock.wall()
        fault("verified")
        if outcome.verified:
            try:
                self.journal.clear(session_id)
            except OSError as exc:  # left, it only makes the next start wipe an empty session again
                outcome.journal = exc.strerror or type(exc).__name__
            self.open_sessions.pop(session_id, None)
            log.info("session %s wiped (%s) and verified", session_id, reason)
        else:
            log.error("session %s wipe incomplete: %s", session_id, ", ".join(outcome.failed_handlers()))
        visit = receipts.visit_of(journal, outcome.started, reason, counts["scans"], prints)
        if visit is not None and not outcome.verified:
            # a failed wipe is retried: the visit it ended is counted once, by this first attempt
            try:
                self.journal.write(session_id, {**journal, "phase": "wiping", "reason": reason, "counted": True})
            except OSError as exc:
                outcome.journal = exc.strerror or type(exc).__name__
        outcome.receipt = receipts.WipeReceipt(
            session=session_id,
            opened_at=receipts.opened_at(journal),
            closed_at=outcome.finished,
            reason=reason,
            verified=outcome.verified,
            handlers=[_with_tally(asdict(v), tally) for v in outcome.verdicts],
            problems=outcome.problems,
            scans=counts["scans"],
            downloads=counts["downloads"],
            prints=prints,
            media_mounted=tally.mounted if tally else 0,
            media_exported=tally.exported if tally else 0,
            visit=visit,
        )
        return outcome

    async def verify(self, session_id: str) -> list[str]:
        return await verify(self.root / session_id, session_id, self.devices.printer, self.app_user)


def _with_tally(verdict: dict[str, object], tally: Tally | None) -> dict[str, object]:
    """The media handler's verdict carries the session's counts (sticks mounted, files exported) into the store."""
    if verdict.get("name") == "media" and tally is not None:
        return {**verdict, "mounted": tally.mounted, "exported": tally.exported}
    return verdict
