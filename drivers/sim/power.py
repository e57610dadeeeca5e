"""Simulated shore, battery and ignition: a view on the simulated van's battery."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import DriverContext, DriverOptions, PowerState


class SimPowerOptions(DriverOptions):
    capacity_wh: float = Field(2400.0, gt=0)
    soc: float = Field(80.0, ge=0, le=100)
    shore: bool = True
    ignition: bool = False
    base_load_w: float = Field(90.0, ge=0)
    session_load_w: float = Field(60.0, ge=0)
    charger_w: float = Field(600.0, ge=0)
    alternator_w: float = Field(400.0, ge=0)
    tick: float = Field(30.0, gt=0, description="simulated seconds between battery integrations")


class SimPower:
    options_model: ClassVar[type[SimPowerOptions]] = SimPowerOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)
        b = self.van.battery
        b.capacity_wh, b.soc, b.shore, b.ignition = opts.capacity_wh, opts.soc, opts.shore, opts.ignition
        b.base_load_w, b.session_load_w = opts.base_load_w, opts.session_load_w
        b.charger_w, b.alternator_w, b.load_w = opts.charger_w, opts.alternator_w, opts.base_load_w
        self.van.tick = opts.tick

    @property
    def state(self) -> PowerState:
        return self.van.power_state()

    async def start(self) -> None:
        self.van.start("power")

    async def close(self) -> None:
        self.van.stop("power")
