"""Simulated button and LED: ``sim press`` and ``sim hold`` act on it; the LED pattern is recorded."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import ButtonState, DriverContext, DriverOptions, LedPattern


class SimButtonOptions(DriverOptions):
    hold_time: float = Field(3.0, ge=0.5, le=30)


class SimButton:
    options_model: ClassVar[type[SimButtonOptions]] = SimButtonOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)
        self.van.hold_time = opts.hold_time

    @property
    def state(self) -> ButtonState:
        return self.van.button

    async def start(self) -> None:
        self.van.start("button")

    async def close(self) -> None:
        self.van.stop("button")

    async def set_led(self, pattern: LedPattern) -> None:
        self.van.set_led(pattern)
