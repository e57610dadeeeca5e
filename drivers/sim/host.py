"""The simulated van's host: powering off and inhibitor locks are recorded with their simulated time.

Like gpiozero's mock pins it keeps a history for tests and scenarios to assert on; powering off also tells the van
its PC no longer draws from the battery. It stops no process and imports only ``kioskd.hal`` and the simulation."""

from __future__ import annotations

from collections import deque
from typing import ClassVar, NamedTuple

from drivers.sim.power import SimPower
from drivers.sim.van import SimVan
from kioskd.hal import DriverContext, DriverOptions


class SimHostOptions(DriverOptions):
    pass


class HostRecord(NamedTuple):
    at: float  # simulated seconds
    what: str  # power_off, acquire, release
    detail: str  # why a lock was taken


class SimInhibitLock:
    """A lock that tells its host when it is released (once)."""

    def __init__(self, host: SimHost, why: str) -> None:
        self.host = host
        self.why = why
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.host._record("release", self.why)


class SimHost:
    """A ``Host`` for the simulated van.

    ``history`` holds a ``HostRecord`` for each ``power_off``, ``acquire`` and ``release``; when the simulated van
    exists its timeline gets the same records (device ``host``), so a scenario reads one timeline."""

    options_model: ClassVar[type[SimHostOptions]] = SimHostOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        self.ctx = ctx
        self.history: deque[HostRecord] = deque(maxlen=1000)
        self.powered_off = False
        self.locks: list[SimInhibitLock] = []

    @property
    def held(self) -> list[SimInhibitLock]:
        """The locks not released yet."""
        return [lock for lock in self.locks if not lock.released]

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def power_off(self) -> None:
        self.powered_off = True
        self._record("power_off", "")
        van = self.ctx.shared.get("sim.van")
        power = van.part("power") if isinstance(van, SimVan) else None
        if isinstance(power, SimPower):
            power.power_off()  # the PC and the screens stop drawing from the battery

    async def inhibit(self, why: str) -> SimInhibitLock:
        lock = SimInhibitLock(self, why)
        self.locks.append(lock)
        self._record("acquire", why)
        return lock

    def _record(self, what: str, detail: str) -> None:
        now = self.ctx.clock.monotonic()
        self.history.append(HostRecord(now, what, detail))
        van = self.ctx.shared.get("sim.van")
        if isinstance(van, SimVan):
            van.record("host", what, detail)
