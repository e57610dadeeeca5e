"""Simulated LTE modem: signal, operator and technology follow the stop; it can hang and be reset."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import DriverContext, DriverOptions, ModemState


class SimModemOptions(DriverOptions):
    operator: str = "Orange F"
    signal: int = Field(70, ge=0, le=100)
    reset_seconds: float = Field(20.0, ge=0, description="simulated time a reset takes")


class SimModem:
    def __init__(self, ctx: DriverContext) -> None:
        self.opts = ctx.parse_options(SimModemOptions)
        self.van = SimVan.of(ctx)
        self.van.modem = replace(self.van.modem, operator=self.opts.operator, signal=self.opts.signal)

    @property
    def state(self) -> ModemState:
        return self.van.modem

    async def start(self) -> None:
        self.van.start("modem")

    async def close(self) -> None:
        self.van.stop("modem")

    async def reset(self) -> None:
        self.van.set_modem(registration="searching", connected=False, internet=None, detail="resetting")
        await self.van.ctx.clock.sleep(self.opts.reset_seconds)
        self.van.modem_hung = False
        signal = self.van.modem.signal or 0
        self.van.set_modem(registration="home" if signal else "searching", connected=signal > 0, detail="")

    async def check_internet(self) -> bool:
        modem = self.van.modem
        reachable = modem.present and modem.connected and not self.van.modem_hung and (modem.signal or 0) > 5
        self.van.set_modem(internet=reachable)
        return reachable
