"""Simulated scanner with a flatbed and a feeder of sheets; it jams, runs empty, opens its cover, vanishes.
Pages are synthetic A4 sheets at the requested resolution. Its verb: scanner."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field

from drivers.sim.van import SimView, choice, number
from kioskd.hal import (
    DeviceFault,
    DeviceKind,
    DriverContext,
    DriverOptions,
    RawPage,
    ScanFinished,
    ScannerChanged,
    ScannerState,
    ScanRequest,
    ScanResult,
    StateEvent,
)

A4_MM = (210.0, 297.0)


class SimScannerOptions(DriverOptions):
    adf_sheets: int = Field(10, ge=0, le=100)
    page_seconds: float = Field(4.0, ge=0, description="simulated time to scan one page")


class SimScanner(SimView):
    kind: ClassVar[DeviceKind] = "scanner"
    options_model: ClassVar[type[SimScannerOptions]] = SimScannerOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = ScannerState(True, "Scanner simulé", "idle", None, ("flatbed", "adf", "duplex"))
        self.adf_sheets = opts.adf_sheets
        self.page_seconds = opts.page_seconds
        self.jam_at: int | None = None  # page number (1-based) of the next job that jams
        self.cover_open = False
        self._ids = itertools.count(1)

    @property
    def state(self) -> ScannerState:
        return self._state

    def changed(self) -> StateEvent:
        return ScannerChanged(self._state)

    def set(self, **changes: Any) -> None:
        self._state = replace(self._state, **changes)
        self.record("set", changes)
        self.publish()

    async def scan(self, request: ScanRequest) -> ScanResult:
        if not self._state.present:
            return ScanResult((), "unplugged")
        if self.cover_open:
            return ScanResult((), "cover-open")
        if self._state.status == "scanning":
            return ScanResult((), "busy")
        job = next(self._ids)
        self.set(status="scanning", fault=None)
        pages: list[RawPage] = []
        fault: str | None = None
        feeder = request.source in ("adf", "duplex")
        # A duplex sheet gives two pages, front then back, in the order the PDF keeps.
        sides = 2 if request.source == "duplex" else 1
        wanted = (self.adf_sheets if request.multi else 1) * sides if feeder else 1
        if feeder and self.adf_sheets == 0:
            fault = "no-docs"
        for page_number in range(1, wanted + 1):
            await self.clock.sleep(self.page_seconds)
            if not self._state.present:
                fault = "unplugged"
                break
            if self.jam_at is not None and page_number >= self.jam_at:
                self.jam_at = None
                fault = "jammed"
                break
            if feeder and page_number % sides == 0:
                self.adf_sheets -= 1
            pages.append(synthetic_page(request, page_number))
        self.set(status="fault" if fault else "idle", fault=fault)
        if fault:
            self.emit(DeviceFault("scanner", f"scanner.{fault}"))
        else:
            self.emit(ScanFinished(job, len(pages)))
        return ScanResult(tuple(pages), fault)

    async def verb_scanner(self, args: list[str]) -> str:
        """scanner unplug|plug|jam [PAGE]|cover open|close|load N|clear"""
        what = choice(args, "scanner", ("unplug", "plug", "jam", "cover", "load", "clear"))
        if what in ("unplug", "plug"):
            self.set(present=what == "plug", status="idle" if what == "plug" else "absent")
        elif what == "jam":
            self.jam_at = int(number(args[1:] or ["1"], "scanner jam", 1, 100))
        elif what == "cover":
            self.cover_open = choice(args[1:], "scanner cover", ("open", "close")) == "open"
        elif what == "load":
            self.adf_sheets = int(number(args[1:], "scanner load", 0, 100))
        else:
            self.set(status="idle", fault=None)
            self.emit(DeviceFault("scanner", "scanner.jammed", cleared=True))
        return f"scanner {' '.join(args)}"


def synthetic_page(request: ScanRequest, number: int) -> RawPage:
    """An A4 page at the requested resolution: white paper with dark 'text lines' (cheap to make)."""
    import numpy as np  # only when a page is scanned: numpy is slow to import and the daemon starts without it

    dpi = request.resolution
    width, height = round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)
    page = np.full((height, width), 245, dtype=np.uint8)
    line_height = max(2, dpi // 30)
    margin = dpi // 2
    for row in range(margin, height - margin, line_height * 3):
        length = width - 2 * margin - ((row * 7919 + number * 104729) % max(1, width // 3))
        page[row : row + line_height, margin : margin + max(0, length)] = 30
    if request.mode == "color":
        page = np.repeat(page[:, :, None], 3, axis=2)
    return RawPage(page, dpi, request.mode)
