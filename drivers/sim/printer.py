"""Simulated printer: a queue that prints page by page, runs out of paper, jams and goes offline, and takes the
session app's own prints ("foreign" jobs). Its verb: printer.

Documents are copied to a private spool under the runtime directory and deleted when their job completes or is
purged, so the wipe's verification checks real files. Like CUPS's spool, the queue itself is on disk beside them
(one control file per job, ``cNNNNN``): a kioskd killed with jobs queued finds them again at its next start, and its
recovery wipe cancels them."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from drivers.sim.van import SimView, choice, number
from kioskd.hal import (
    JOB_FINISHED,
    DeviceError,
    DeviceFault,
    DeviceKind,
    DriverContext,
    DriverOptions,
    JobState,
    JobStateChanged,
    PrinterChanged,
    PrinterState,
    PrintJob,
    StateEvent,
)


class SimPrinterOptions(DriverOptions):
    paper: int = Field(250, ge=0)
    toner: int = Field(80, ge=0, le=100)
    page_seconds: float = Field(5.0, ge=0, description="simulated time to print one page")


@dataclass
class SimJob:
    job: PrintJob
    spool: Path
    pages: int
    remaining: float  # seconds of printing left
    foreign: bool = False  # printed by the session app through the queue, under its own (maybe personal) title


class SimPrinter(SimView):
    kind: ClassVar[DeviceKind] = "printer"
    options_model: ClassVar[type[SimPrinterOptions]] = SimPrinterOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = PrinterState(True, "Imprimante simulée", "idle", ())
        self.paper = opts.paper
        self.toner = opts.toner
        self.page_seconds = opts.page_seconds
        self.purge_stuck = False  # the queue refuses to purge (a wipe handler that fails)
        self.session: str | None = None  # the session open now (foreign jobs belong to it)
        self.queue: dict[int, SimJob] = {}  # every job the queue lists, by id
        self._ids = itertools.count(1)
        self.spool = ctx.runtime_dir / "sim-printer-spool"
        self._printing: asyncio.Task[None] | None = None

    @property
    def state(self) -> PrinterState:
        return self._state

    def changed(self) -> StateEvent:
        return PrinterChanged(self._state)

    async def start(self) -> None:
        self.started = True
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._load()
        self.publish()
        self.set(reasons=self._reasons())

    async def close(self) -> None:
        self.started = False
        if self._printing is not None:
            self._printing.cancel()

    # ------------------------------------------------------------------------------------------- the spool
    def _control(self, job_id: int) -> Path:
        return self.spool / f"c{job_id:05d}"

    def _save(self, sim: SimJob) -> None:
        """The job's control file: id, session, state, pages and title (kioskd's anonymous one, or the sim's own for
        the app's jobs: never a document's name)."""
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)  # the runtime dir may have been deleted
        job = sim.job
        record = {
            "id": job.id,
            "session": job.session,
            "title": job.title,
            "state": job.state,
            "pages": sim.pages,
            "foreign": sim.foreign,
        }
        path = self._control(job.id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        os.replace(tmp, path)

    def _forget(self, job_id: int) -> None:
        self._control(job_id).unlink(missing_ok=True)

    def _load(self) -> None:
        """The jobs a previous run left in the spool (killed, power cut): listed again, not printed until asked."""
        for path in sorted(self.spool.glob("c[0-9]*")):
            try:
                record = json.loads(path.read_text())
                job_id, session = int(record["id"]), str(record["session"])
                state: JobState = "pending" if record["state"] == "processing" else record["state"]
                pages, foreign = int(record["pages"]), bool(record["foreign"])
                title = str(record["title"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            job = PrintJob(job_id, session, title, state)
            spool = self.spool / f"d{job_id:05d}-001"
            self.queue[job_id] = SimJob(job, spool, pages, pages * self.page_seconds, foreign)
        if self.queue:
            self._ids = itertools.count(max(self.queue) + 1)

    # ------------------------------------------------------------------------------------------- the queue
    def set_session(self, session: str | None) -> None:
        self.session = session

    async def submit(self, document: Path, *, title: str, session: str) -> int:
        if not self._state.present:
            raise DeviceError("the printer is unplugged", where="printer", key="printer.offline")
        return self._queue_document(document, title, session)

    def _queue_document(self, document: Path, title: str, session: str) -> int:
        job_id = next(self._ids)
        spool = self.spool / f"d{job_id:05d}-001"
        data = document.read_bytes()
        self._spool(spool, data)
        pages = max(1, data.count(b"/Type /Page") - data.count(b"/Type /Pages"))
        job = PrintJob(job_id, session, title, "pending")
        self.queue[job_id] = SimJob(job, spool, pages, pages * self.page_seconds)
        self._save(self.queue[job_id])
        self.emit(JobStateChanged(job))
        if self._printing is None or self._printing.done():
            self._printing = asyncio.get_running_loop().create_task(self._print_loop())
        return job_id

    def submit_foreign(self, content: bytes) -> int:
        """The session app prints through the queue: a job under the app's own title, the session's if one is open."""
        job_id = next(self._ids)
        spool = self.spool / f"d{job_id:05d}-001"
        self._spool(spool, content)
        owner = self.session or ""
        title = f"kiosk-{owner}-app{job_id}" if owner else f"kiosk-app{job_id}"  # the app's own title never kept
        job = PrintJob(job_id, owner, title, "pending")
        self.queue[job_id] = SimJob(job, spool, 1, self.page_seconds, foreign=True)
        self._save(self.queue[job_id])
        self.emit(JobStateChanged(job))
        self.kick()
        return job_id

    async def jobs(self, session: str) -> tuple[PrintJob, ...]:
        return tuple(j.job for j in self.queue.values() if j.job.session == session)

    async def cancel_jobs(self, session: str) -> None:
        for sim in self.queue.values():
            if sim.job.session == session and sim.job.state not in JOB_FINISHED:
                self.set_job(sim, "cancelled")

    async def purge_jobs(self, session: str) -> None:
        if self.purge_stuck:
            raise DeviceError("the print queue refuses to purge", where="printer")
        for job_id in [i for i, j in self.queue.items() if j.job.session == session or j.foreign]:
            self.queue.pop(job_id).spool.unlink(missing_ok=True)
            self._forget(job_id)

    async def verify_purged(self, session: str) -> tuple[str, ...]:
        left = [j for j in self.queue.values() if j.job.session == session or j.foreign]
        problems = [f"{len(left)} job(s) of the session still listed"] if left else []
        spooled = [j for j in left if j.spool.exists()]
        if spooled:
            problems.append(f"{len(spooled)} document file(s) of the session in the spool")
        return tuple(problems)

    # ------------------------------------------------------------------------------------------- physics
    def set(self, **changes: Any) -> None:
        before = self._state
        self._state = replace(self._state, **changes)
        self.record("set", changes)
        for reason in set(self._state.reasons) - set(before.reasons):
            self.emit(DeviceFault("printer", f"printer.{reason}"))
        for reason in set(before.reasons) - set(self._state.reasons):
            self.emit(DeviceFault("printer", f"printer.{reason}", cleared=True))
        self.publish()

    def _reasons(self, jam: bool | None = None) -> tuple[str, ...]:
        reasons = [r for r in self._state.reasons if r in ("media-jam",)] if jam is None else []
        if jam:
            reasons.append("media-jam")
        if self.paper == 0:
            reasons.append("media-empty")
        if self.toner < 10:
            reasons.append("toner-low")
        if not self._state.present:
            reasons.append("offline")
        return tuple(reasons)

    def set_job(self, sim: SimJob, state: JobState, reasons: tuple[str, ...] = ()) -> None:
        if sim.job.state == state and sim.job.reasons == reasons:
            return
        changed = sim.job.state != state
        sim.job = replace(sim.job, state=state, reasons=reasons)
        if changed and sim.job.id in self.queue:
            self._save(sim)
        self.emit(JobStateChanged(sim.job))

    def _spool(self, path: Path, data: bytes) -> None:
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)

    async def _print_loop(self) -> None:
        """Prints queued jobs in order, a page at a time; stops (without losing the job) on no paper/offline."""
        step = 1.0
        while True:
            waiting = [j for j in self.queue.values() if j.job.state not in JOB_FINISHED and j.job.state != "held"]
            if not waiting:
                self.set(status="idle" if self._state.present else "unavailable")
                return
            current = waiting[0]
            blocked = [r for r in self._state.reasons if r in ("media-empty", "media-jam", "offline")]
            if blocked:
                self.set(status="stopped" if self._state.present else "unavailable")
                self.set_job(current, "processing" if current.job.state == "processing" else "pending", tuple(blocked))
            else:
                self.set(status="printing")
                self.set_job(current, "processing")
                current.remaining -= step
                if current.remaining <= 0:
                    self.paper = max(0, self.paper - current.pages)
                    self.set_job(current, "completed")
                    current.spool.unlink(missing_ok=True)  # like PreserveJobFiles No
                    self.set(reasons=self._reasons())
            await self.clock.sleep(step)

    def kick(self) -> None:
        if any(j.job.state not in JOB_FINISHED for j in self.queue.values()) and (
            self._printing is None or self._printing.done()
        ):
            self._printing = asyncio.get_running_loop().create_task(self._print_loop())

    def jam(self) -> None:
        active = [j for j in self.queue.values() if j.job.state == "processing"]
        for sim in active:
            self.set_job(sim, "aborted", ("media-jam",))
            sim.spool.unlink(missing_ok=True)
        self.set(status="stopped", reasons=self._reasons(jam=True))

    # ------------------------------------------------------------------------------------------- verbs
    async def verb_printer(self, args: list[str]) -> str:
        """printer unplug|plug|paper N|jam|clear|toner PERCENT|stuck|unstuck (purge refused)|app-job [TEXT]"""
        choices = ("unplug", "plug", "paper", "jam", "clear", "toner", "stuck", "unstuck", "app-job")
        what = choice(args, "printer", choices)
        if what == "app-job":
            job_id = self.submit_foreign(" ".join(args[1:]).encode() or b"%PDF-1.4 app page")
            return f"the session app printed job {job_id}"
        if what in ("stuck", "unstuck"):
            self.purge_stuck = what == "stuck"
            return f"printer purge {'refused' if self.purge_stuck else 'works again'}"
        if what == "paper":
            self.paper = int(number(args[1:], "printer paper", 0, 1000))
        elif what == "toner":
            self.toner = int(number(args[1:], "printer toner", 0, 100))
        elif what == "jam":
            self.jam()
            return "printer jammed"
        elif what in ("plug", "unplug"):
            self._state = replace(self._state, present=what == "plug")
        jam = False if what == "clear" else None
        self.set(reasons=self._reasons(jam), status="idle" if self._state.present else "unavailable")
        self.kick()
        return f"printer {' '.join(args)}"
