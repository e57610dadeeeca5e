"""Simulated agent and citizen screens: mirror, curtain (privacy), power, and cable hotplug."""

from __future__ import annotations

from typing import ClassVar

from drivers.sim.van import SimVan
from kioskd.hal import DisplaysState, DriverContext, DriverOptions


class SimDisplays:
    options_model: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)

    @property
    def state(self) -> DisplaysState:
        return self.van.displays

    async def start(self) -> None:
        self.van.start("displays")

    async def close(self) -> None:
        self.van.stop("displays")

    async def set_mirror(self, on: bool) -> None:
        self.van.set_displays(mirrored=on)

    async def set_curtain(self, on: bool) -> None:
        self.van.set_displays(curtain=on)

    async def set_power(self, on: bool) -> None:
        self.van.set_displays(powered=on)

    async def clear_clipboard(self) -> None:
        self.van.clipboard = ""
        self.van.record("clipboard", "cleared")
