"""Simulated LTE modem: signal, operator and technology follow the stop; it can hang (a reset cures it), lose its
bearer while the link looks up (a reconnect cures it), lose or lock its SIM, and be unplugged. Its verbs: signal,
tech, operator, link, modem, internet, sim."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, cast

from pydantic import Field

from drivers.sim.van import SimView, choice, number
from kioskd.hal import (
    DeviceError,
    DeviceKind,
    DriverContext,
    DriverOptions,
    ModemChanged,
    ModemState,
    SignalChanged,
    SimStatus,
    StateEvent,
    Technology,
)


class SimModemOptions(DriverOptions):
    operator: str = "Orange F"
    signal: int = Field(70, ge=0, le=100)
    reset_seconds: float = Field(20.0, ge=0, description="simulated time a reset takes")
    reconnect_seconds: float = Field(5.0, ge=0, description="simulated time a bearer reconnection takes")


def rsrp_of(quality: int) -> float:
    """An LTE RSRP (dBm) for a signal quality (%): ModemManager's quality spans about -140 … -44 dBm."""
    return round(-140.0 + 0.96 * quality, 1)


class SimModem(SimView):
    kind: ClassVar[DeviceKind] = "modem"
    options_model: ClassVar[type[SimModemOptions]] = SimModemOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = ModemState(
            True, "home", "lte", self.opts.signal, self.opts.operator, True, True, rsrp=rsrp_of(70), sim="ready"
        )
        self.hung = False  # answers nothing until reset
        self.bearer_broken = False  # the data link is up but nothing passes (a stale bearer): a reconnect fixes it

    @property
    def state(self) -> ModemState:
        return self._state

    def changed(self) -> StateEvent:
        return ModemChanged(self._state)

    def set(self, **changes: Any) -> None:
        """Change some fields of the modem's state (``SignalChanged`` when the signal or technology moves)."""
        before = self._state
        self._state = replace(self._state, **changes)
        self.record("set", changes)
        if (before.signal, before.technology) != (self._state.signal, self._state.technology):
            self.emit(SignalChanged(self._state.signal, self._state.technology))
        self.publish()

    # ------------------------------------------------------------------------------------------- commands
    async def reset(self) -> None:
        self._require()
        self.set(registration="searching", connected=False, internet=None, detail="resetting")
        await self.clock.sleep(self.opts.reset_seconds)
        self.hung = False
        self.bearer_broken = False
        self._attach()

    async def reconnect(self) -> None:
        self._require()
        self.set(connected=False, detail="reconnecting")
        await self.clock.sleep(self.opts.reconnect_seconds)
        if not self.hung:
            self.bearer_broken = False  # a fresh bearer; a hung modem ignores the request
        self._attach()

    def _require(self) -> None:
        if not self._state.present:
            raise DeviceError("no modem", where="modem", action="plug the modem in", key="modem.absent")

    def _attach(self) -> None:
        if self.hung:  # still registered as far as the network knows, but no data passes
            self.set(connected=False, detail="not responding")
            return
        modem = self._state
        usable = modem.sim == "ready" and (modem.signal or 0) > 0
        self.set(registration="home" if usable else "searching", connected=usable, detail="")

    async def check_internet(self) -> bool:
        modem = self._state
        reachable = (
            modem.present and modem.connected and not self.hung and not self.bearer_broken and (modem.signal or 0) > 5
        )
        self.set(internet=reachable)
        return reachable

    # ------------------------------------------------------------------------------------------- verbs
    async def verb_signal(self, args: list[str]) -> str:
        """signal PERCENT: LTE signal quality"""
        quality = int(number(args, "signal", 0, 100))
        registration = "home" if quality > 0 else "searching"
        self.set(
            signal=quality,
            rsrp=rsrp_of(quality),
            registration=registration,
            internet=quality > 5 and self._state.connected and not self.bearer_broken,
        )
        return f"signal {quality} %"

    async def verb_tech(self, args: list[str]) -> str:
        """tech none|gsm|umts|lte|5gnr: access technology"""
        tech = cast(Technology, choice(args, "tech", ("none", "gsm", "umts", "lte", "5gnr")))
        self.set(technology=tech)
        return f"technology {tech}"

    async def verb_operator(self, args: list[str]) -> str:
        """operator NAME: the network operator"""
        if not args:
            raise ValueError("operator: expected a name")
        self.set(operator=" ".join(args))
        return f"operator {' '.join(args)}"

    async def verb_link(self, args: list[str]) -> str:
        """link up|down: the data connection"""
        up = choice(args, "link", ("up", "down")) == "up"
        self.set(connected=up, internet=up and (self._state.signal or 0) > 5 and not self.bearer_broken)
        return f"link {'up' if up else 'down'}"

    async def verb_modem(self, args: list[str]) -> str:
        """modem hang|unplug|plug"""
        what = choice(args, "modem", ("hang", "unplug", "plug"))
        if what == "hang":
            self.hung = True
            self.set(connected=False, internet=False, detail="not responding")
        else:
            self.set(present=what == "plug", registration="home" if what == "plug" else "unknown")
        return f"modem {what}"

    async def verb_internet(self, args: list[str]) -> str:
        """internet down|up: the link stays up but nothing passes (a reconnect fixes it)"""
        self.bearer_broken = choice(args, "internet", ("up", "down")) == "down"
        self.set(internet=not self.bearer_broken and self._state.connected)
        return f"internet {'down (the link stays up)' if self.bearer_broken else 'up'}"

    async def verb_sim(self, args: list[str]) -> str:
        """sim ready|locked|missing: the modem's SIM card"""
        status = cast(SimStatus, choice(args, "sim", ("ready", "locked", "missing")))
        ready = status == "ready"
        registration = "home" if ready and (self._state.signal or 0) > 0 else "idle"
        self.set(sim=status, registration=registration, connected=ready and self._state.connected)
        return f"SIM {status}"
