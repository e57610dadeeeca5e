"""The printing rules: a document of the current session is written into its workspace and printed under an
anonymous title (``kiosk-<session>-<n>``); every job of the session (the session app's own too) is counted for its
wipe, and counts as work with the citizen. It drives any ``kioskd.hal.Printer``; no driver, no CUPS here."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

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
        # written and read through one descriptor: the session app shares the prints folder and could swap the
        # file for a link to a system file between the write and the printer's read
        fd = await asyncio.to_thread(session.workspace.write_print, f"print-{number}.pdf", document)
        try:
            job = await self.printer.submit(
                Path(f"/proc/self/fd/{fd}"), title=f"kiosk-{session.id}-{number}", session=session.id
            )
        finally:
            os.close(fd)
        await self.outlet.snapshot()
        return job
