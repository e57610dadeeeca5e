"""Simulated scanner with a flatbed and a feeder of sheets; it jams, runs empty, opens its cover, vanishes."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import DriverContext, DriverOptions, ScannerState, ScanRequest, ScanResult


class SimScannerOptions(DriverOptions):
    adf_sheets: int = Field(10, ge=0, le=100)
    page_seconds: float = Field(4.0, ge=0, description="simulated time to scan one page")


class SimScanner:
    options_model: ClassVar[type[SimScannerOptions]] = SimScannerOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)
        self.van.adf_sheets, self.van.page_seconds = opts.adf_sheets, opts.page_seconds

    @property
    def state(self) -> ScannerState:
        return self.van.scanner

    async def start(self) -> None:
        self.van.start("scanner")

    async def close(self) -> None:
        self.van.stop("scanner")

    async def scan(self, request: ScanRequest) -> ScanResult:
        return await self.van.scan(request)
