"""Simulated printer: a queue that prints page by page, runs out of paper, jams and goes offline.

Documents are copied to a private spool under the runtime directory and deleted when their job completes or is
purged, so the wipe's verification checks real files."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import JOB_FINISHED, DeviceError, DriverContext, DriverOptions, PrinterState, PrintJob


class SimPrinterOptions(DriverOptions):
    paper: int = Field(250, ge=0)
    toner: int = Field(80, ge=0, le=100)
    page_seconds: float = Field(5.0, ge=0, description="simulated time to print one page")


class SimPrinter:
    options_model: ClassVar[type[SimPrinterOptions]] = SimPrinterOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)
        self.van.paper, self.van.toner, self.van.page_print_seconds = (
            opts.paper,
            opts.toner,
            opts.page_seconds,
        )

    @property
    def state(self) -> PrinterState:
        return self.van.printer

    async def start(self) -> None:
        self.van.start("printer")
        self.van.set_printer(reasons=self.van._reasons())

    async def close(self) -> None:
        self.van.stop("printer")

    def set_session(self, session: str | None) -> None:
        self.van.printer_session = session

    async def submit(self, document: Path, *, title: str, session: str) -> int:
        if not self.van.printer.present:
            raise DeviceError("the printer is unplugged", where="printer", key="printer.offline")
        return self.van.submit(document, title, session)

    async def jobs(self, session: str) -> tuple[PrintJob, ...]:
        return tuple(j.job for j in self.van.jobs.values() if j.job.session == session)

    # the session app's own prints come through the van: ``sim printer app-job`` submits a foreign job

    async def cancel_jobs(self, session: str) -> None:
        for sim in self.van.jobs.values():
            if sim.job.session == session and sim.job.state not in JOB_FINISHED:
                self.van.set_job(sim, "cancelled")

    async def purge_jobs(self, session: str) -> None:
        if self.van.purge_stuck:
            raise DeviceError("the print queue refuses to purge", where="printer")
        for job_id in [i for i, j in self.van.jobs.items() if j.job.session == session or j.foreign]:
            self.van.jobs.pop(job_id).spool.unlink(missing_ok=True)

    async def verify_purged(self, session: str) -> tuple[str, ...]:
        left = [j for j in self.van.jobs.values() if j.job.session == session or j.foreign]
        problems = [f"{len(left)} job(s) of the session still listed"] if left else []
        spooled = [j for j in left if j.spool.exists()]
        if spooled:
            problems.append(f"{len(spooled)} document file(s) of the session in the spool")
        return tuple(problems)
