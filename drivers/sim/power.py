"""Simulated shore, battery and ignition: the van's battery drains with the station's load and charges on shore
or from the alternator, integrated on the injected clock at a fixed period (``tick``), so an accelerated clock
plays a day on tour in seconds. Its verbs: shore, soc, load, ignition, monitor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from drivers.sim.van import SimView, choice, number, on_off
from kioskd.hal import (
    DeviceKind,
    DriverContext,
    DriverOptions,
    IgnitionChanged,
    PowerChanged,
    PowerState,
    ShoreChanged,
    StateEvent,
)


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


@dataclass
class Battery:
    capacity_wh: float = 2400.0
    soc: float = 80.0
    base_load_w: float = 90.0  # PC, router, screens
    session_load_w: float = 60.0  # printer warm, scanner, citizen screen lit
    charger_w: float = 600.0  # on shore
    alternator_w: float = 400.0  # ignition on
    shore: bool = True
    ignition: bool = False
    load_w: float = 90.0


class SimPower(SimView):
    """The battery, the shore plug and the ignition; ``monitor down`` makes the battery monitor fall silent."""

    kind: ClassVar[DeviceKind] = "power"
    options_model: ClassVar[type[SimPowerOptions]] = SimPowerOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self.battery = Battery(
            capacity_wh=opts.capacity_wh,
            soc=opts.soc,
            base_load_w=opts.base_load_w,
            session_load_w=opts.session_load_w,
            charger_w=opts.charger_w,
            alternator_w=opts.alternator_w,
            shore=opts.shore,
            ignition=opts.ignition,
            load_w=opts.base_load_w,
        )
        self.tick = opts.tick
        self.monitor_ok = True  # the battery monitor answers
        self._timer: Any = None
        self._last_tick: float | None = None

    @property
    def state(self) -> PowerState:
        b = self.battery
        if not self.monitor_ok:
            return PowerState(available=False)
        net = self._net_power()
        voltage = 12.0 + 1.4 * b.soc / 100 + (0.6 if net > 0 else 0.0)
        ttg = None if net >= 0 else b.capacity_wh * b.soc / 100 / -net * 3600
        return PowerState(
            available=True,
            shore=b.shore,
            ignition=b.ignition,
            soc=round(b.soc, 2),
            time_to_go=None if ttg is None else round(ttg),
            voltage=round(voltage, 2),
            current=round(net / voltage, 2),
            power=round(net, 1),
            charging=net > 0,
            alarm="low-soc" if b.soc < 10 else None,
            detail="bulk" if net > 0 and b.soc < 80 else "absorption" if net > 0 else "discharge",
        )

    def changed(self) -> StateEvent:
        return PowerChanged(self.state)

    async def start(self) -> None:
        self.started = True
        if self._timer is None:
            self._last_tick = self.clock.monotonic()
            self._schedule_tick()
        self.publish()

    async def close(self) -> None:
        self.started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------------------------------- physics
    def _net_power(self) -> float:
        b = self.battery
        gain = (b.charger_w if b.shore else 0.0) + (b.alternator_w if b.ignition else 0.0)
        return gain - b.load_w

    def _schedule_tick(self) -> None:
        self._timer = self.clock.call_later(self.tick, self._on_tick)

    def _on_tick(self) -> None:
        self.integrate()
        self.publish()
        self._schedule_tick()

    def integrate(self) -> None:
        """Bring the battery's charge up to now (energy over the time since the last integration)."""
        now = self.clock.monotonic()
        if self._last_tick is None:
            self._last_tick = now
            return
        dt = now - self._last_tick
        self._last_tick = now
        b = self.battery
        b.soc = min(100.0, max(0.0, b.soc + self._net_power() * dt / 3600 / b.capacity_wh * 100))

    def set_load(self, in_session: bool) -> None:
        """Lit screens and a warm printer: the station's own load on top of the base load."""
        self.integrate()
        self.battery.load_w = self.battery.base_load_w + (self.battery.session_load_w if in_session else 0.0)

    def power_off(self) -> None:
        """The station's PC is off: only the van's own standby load is left (none, in this model)."""
        self.integrate()
        self.battery.load_w = 0.0
        self.publish()

    def set_shore(self, on: bool) -> None:
        self.integrate()
        self.battery.shore = on
        self.record("shore", on)
        self.emit(ShoreChanged(on))
        self.publish()

    def set_ignition(self, on: bool) -> None:
        self.integrate()
        self.battery.ignition = on
        self.record("ignition", on)
        self.emit(IgnitionChanged(on))
        self.publish()

    # ------------------------------------------------------------------------------------------- verbs
    async def verb_shore(self, args: list[str]) -> str:
        """shore on|off|flap [N]: the shore (mains) plug"""
        if args and args[0] == "flap":
            count = int(number(args[1:] or ["3"], "shore flap", 1, 50))
            for _ in range(count):
                self.set_shore(not self.battery.shore)
                await self.clock.sleep(1.0)
                self.set_shore(not self.battery.shore)
                await self.clock.sleep(1.0)
            return f"shore flapped {count} times"
        self.set_shore(on_off(args, "shore"))
        return f"shore {'on' if self.battery.shore else 'off'}"

    async def verb_soc(self, args: list[str]) -> str:
        """soc PERCENT: set the battery's state of charge"""
        self.integrate()
        self.battery.soc = number(args, "soc", 0, 100)
        self.record("soc", self.battery.soc)
        self.publish()
        return f"soc {self.battery.soc:g} %"

    async def verb_load(self, args: list[str]) -> str:
        """load WATTS: the van's base load"""
        self.integrate()
        self.battery.base_load_w = number(args, "load", 0, 5000)
        self.battery.load_w = self.battery.base_load_w
        self.publish()
        return f"base load {self.battery.base_load_w:g} W"

    async def verb_ignition(self, args: list[str]) -> str:
        """ignition on|off: the engine"""
        self.set_ignition(on_off(args, "ignition"))
        return f"ignition {'on' if self.battery.ignition else 'off'}"

    async def verb_monitor(self, args: list[str]) -> str:
        """monitor up|down: the battery monitor answers or not"""
        self.monitor_ok = choice(args, "monitor", ("up", "down")) == "up"
        self.publish()
        return f"battery monitor {'up' if self.monitor_ok else 'down'}"
