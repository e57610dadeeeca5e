"""The printing rules: a document of the current session is written into its workspace and printed under an
anonymous title (``kiosk-<session>-<n>``); every job of the session (the session app's own too) is counted for its
wipe, and counts as work with the citizen. It drives any ``kioskd.hal.Printer``; no driver, no CUPS here."""

from __future__ import annotations

import asyncio

from kioskd.errors import TransitionRefused
from kioskd.hal import Event, JobStateChanged, Printer
from kioskd.policies.base import Policy


class PrintingPolicy(Policy):
    events = (JobStateChanged,)

    def __init__(self, printer: Printer) -> None:
        self.printer = printer

    def on_event(self, event: Event) -> None:
        session = self.outlet.session
        if isinstance(event, JobStateChanged) and session is not None and event.job.session == session.id:
            session.job_ids.add(event.job.id)
            self.outlet.touch()

    async def print_document(self, document: bytes) -> int:
        """Print a document of the current session under an anonymous title; returns the job id."""
        session = self.outlet.session
        if session is None or self.outlet.state.mode != "in_session":
            raise TransitionRefused("printing needs a citizen session", where="station", key="refused.no_session")
        self.outlet.touch()
        session.print_count += 1
        number = session.print_count
        path = session.workspace.prints / f"print-{number}.pdf"
        await asyncio.to_thread(path.write_bytes, document)
        job = await self.printer.submit(path, title=f"kiosk-{session.id}-{number}", session=session.id)
        await self.outlet.snapshot()
        return job
