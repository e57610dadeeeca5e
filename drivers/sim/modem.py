"""Simulated LTE modem: signal, operator and technology follow the stop; it can hang (a reset cures it), lose its
bearer while the link looks up (a reconnect cures it), lose or lock its SIM, and be unplugged."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import DeviceError, DriverContext, DriverOptions, ModemState


class SimModemOptions(DriverOptions):
    operator: str = "Orange F"
    signal: int = Field(70, ge=0, le=100)
    reset_seconds: float = Field(20.0, ge=0, description="simulated time a reset takes")
    reconnect_seconds: float = Field(5.0, ge=0, description="simulated time a bearer reconnection takes")


class SimModem:
    options_model: ClassVar[type[SimModemOptions]] = SimModemOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.opts = ctx.parse_options(self.options_model)
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
        self._require()
        self.van.set_modem(registration="searching", connected=False, internet=None, detail="resetting")
        await self.van.ctx.clock.sleep(self.opts.reset_seconds)
        self.van.modem_hung = False
        self.van.bearer_broken = False
        self._attach()

    async def reconnect(self) -> None:
        self._require()
        self.van.set_modem(connected=False, detail="reconnecting")
        await self.van.ctx.clock.sleep(self.opts.reconnect_seconds)
        if not self.van.modem_hung:
            self.van.bearer_broken = False  # a fresh bearer; a hung modem ignores the request
        self._attach()

    def _require(self) -> None:
        if not self.van.modem.present:
            raise DeviceError("no modem", where="modem", action="plug the modem in", key="modem.absent")

    def _attach(self) -> None:
        if self.van.modem_hung:  # still registered as far as the network knows, but no data passes
            self.van.set_modem(connected=False, detail="not responding")
            return
        modem = self.van.modem
        usable = modem.sim == "ready" and (modem.signal or 0) > 0
        self.van.set_modem(registration="home" if usable else "searching", connected=usable, detail="")

    async def check_internet(self) -> bool:
        modem = self.van.modem
        reachable = (
            modem.present
            and modem.connected
            and not self.van.modem_hung
            and not self.van.bearer_broken
            and (modem.signal or 0) > 5
        )
        self.van.set_modem(internet=reachable)
        return reachable
