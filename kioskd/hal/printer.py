"""The printer contract: the queue's state, the jobs kioskd submits (anonymous titles) and their events.

Which session a job belongs to and when to purge are the printing policy's and the wipe's, not the backend's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent

PrinterStatus = Literal["idle", "printing", "stopped", "unavailable"]
JobState = Literal["pending", "held", "processing", "stopped", "completed", "cancelled", "aborted"]
JOB_FINISHED: frozenset[str] = frozenset({"completed", "cancelled", "aborted"})


@dataclass(frozen=True)
class PrinterState:
    present: bool = False
    name: str = ""
    status: PrinterStatus = "unavailable"
    reasons: tuple[str, ...] = ()  # IPP printer-state-reasons without severity suffix, e.g. "media-empty"


@dataclass(frozen=True)
class PrintJob:
    id: int
    session: str
    title: str  # always anonymous: kiosk-<session>-<n>
    state: JobState
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrinterChanged(StateEvent):
    device: ClassVar[DeviceKind] = "printer"
    state: PrinterState


@dataclass(frozen=True)
class JobStateChanged(Event):
    job: PrintJob


@runtime_checkable
class Printer(Device, Protocol):
    """A print queue (CUPS). Jobs kioskd submits carry an anonymous title ``kiosk-<session>-<n>``; jobs that reach
    the queue another way (the session app printing through CUPS: "foreign" jobs, titled by the app, perhaps with
    the citizen's name) belong to the session open when they arrive, and every wipe removes them all.

    MUST: ``state`` and ``PrinterChanged``, ``JobStateChanged`` on each job's change, a ``DeviceFault``
    ``printer.<reason>`` when a reason appears (``cleared`` when it goes); every method below. MAY: offer
    ``diagnose()`` (the CUPS backend checks its server keeps no job history or files)."""

    @property
    def state(self) -> PrinterState: ...

    def set_session(self, session: str | None) -> None:
        """The session open now (None between sessions): foreign jobs arriving meanwhile are counted as its own."""
        ...

    async def submit(self, document: Path, *, title: str, session: str) -> int: ...

    async def jobs(self, session: str) -> tuple[PrintJob, ...]:
        """The session's jobs, foreign ones included; their titles as the API may show them (anonymous)."""
        ...

    async def cancel_jobs(self, session: str) -> None: ...

    async def purge_jobs(self, session: str) -> None:
        """Remove the session's jobs and every foreign job on the queue, with their files and their history
        (a foreign job can only come from a session app: after a crash, nobody knows which session's it was)."""
        ...

    async def verify_purged(self, session: str) -> tuple[str, ...]:
        """What is left of the session or of any foreign job (jobs listed, spool files); empty when nothing is."""
        ...
