"""The scanning rules: one scan job goes into the current session's scans folder, fitted to the chosen upload
destination's size budget (the image work is ``scanning_pipeline``'s); a scan in progress is work with the
citizen, never idleness. It drives any ``kioskd.hal.Scanner``; no driver, no SANE here."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kioskd import messages
from kioskd.errors import TransitionRefused
from kioskd.hal import Clock, Event, ScanFinished, ScanMode, Scanner, ScanRequest, ScanSource
from kioskd.policies.base import Policy
from kioskd.profile import ScanningConfig

if TYPE_CHECKING:
    from kioskd.station.snapshot import Level


class ScanningPolicy(Policy):
    events = (ScanFinished,)

    def __init__(self, config: ScanningConfig, scanner: Scanner, clock: Clock) -> None:
        self.config = config
        self.scanner = scanner
        self.clock = clock
        self._running = 0

    def on_event(self, event: Event) -> None:
        self.outlet.touch()

    def busy(self) -> bool:
        return self._running > 0

    async def scan(
        self, source: ScanSource, mode: ScanMode | None, multi: bool, destination: str | None
    ) -> dict[str, Any]:
        """One scan job into the current session's scans folder, fitted to the destination's size budget."""
        # imported here: OpenCV costs a third of a second at start-up and is only needed once a citizen is in
        from kioskd.policies.scanning_pipeline import scan_to_pdf

        outlet = self.outlet
        session = outlet.session
        if session is None or outlet.state.mode != "in_session":
            raise TransitionRefused("scanning needs a citizen session", where="station", key="refused.no_session")
        cfg = self.config
        try:
            target = cfg.destination(destination)
        except KeyError:
            raise TransitionRefused(
                f"no upload destination {destination!r}",
                where="scanning",
                key="api.bad_request",
                params={"detail": f"destination: {', '.join(d.name for d in cfg.destinations)}"},
            ) from None
        outlet.touch()
        request = ScanRequest(source=source, resolution=cfg.resolution, mode=mode or cfg.mode, multi=multi)
        self._running += 1
        try:
            outcome = await scan_to_pdf(
                self.scanner, request, dest=session.workspace.scans, budget=target.max_bytes, clock=self.clock
            )
        finally:
            self._running -= 1
        outlet.touch()
        level: Level = "info" if outcome.path is not None and outcome.fault is None else "warning"
        outlet.notice("scan", outcome.message, level, **dict(outcome.params))
        await outlet.snapshot()
        return {
            "ok": outcome.path is not None,
            "file": outcome.path.name if outcome.path else None,
            "pages": outcome.pages,
            "bytes": outcome.bytes,
            "fault": outcome.fault,
            "destination": target.name,
            "message": messages.both(outcome.message, **dict(outcome.params)),
        }

    async def scans(self) -> list[dict[str, Any]]:
        """The current session's scans (names kioskd gave them, sizes) — for the session's own view only."""
        session = self.outlet.session
        if session is None:
            return []
        # regular files only, the folder never through a link: the session app may have swapped it or planted FIFOs
        files = await asyncio.to_thread(session.workspace.scan_files)
        return [{"file": name, "bytes": size} for name, size in files]
