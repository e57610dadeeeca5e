"""Shared fixtures: a station on the simulated van, on a manual clock, with everything in a temp dir."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from drivers.sim.van import SimHistory, VanSimulation
from kioskd.bus import EventBus
from kioskd.clock import ManualClock
from kioskd.hal import Devices, Event
from kioskd.hal.loader import build_devices
from kioskd.profile import SIM_PROFILE, Profile, parse_profile
from kioskd.records.store import Store
from kioskd.session import Sessions
from kioskd.station import Station

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

REAL_PAUSE = 0.002  # seconds of real time per simulated step in Rig.drive (threads finish meanwhile)
REAL_LIMIT = 120.0  # Rig.drive says "never finished" only after this much real time too (a loaded machine's threads)


def sim_profile(**overrides: Any) -> Profile:
    """profiles/sim.toml with some tables overridden: ``sim_profile(station={"hold_time": 2})``."""
    data = tomllib.loads(SIM_PROFILE.read_text())
    for table, values in overrides.items():
        node = data
        *parents, last = table.split(".")
        for part in parents:
            node = node[part]
        node[last] = {**node.get(last, {}), **values}
    return parse_profile(data, "test-profile.toml")


@dataclass
class Rig:
    station: Station
    clock: ManualClock
    bus: EventBus
    devices: Devices
    events: list[Event]
    runtime: Path
    state_dir: Path

    async def sim(self, verb: str, *args: str) -> str:
        assert self.devices.simulation is not None
        task = asyncio.ensure_future(self.devices.simulation.apply(verb, list(args)))
        while not task.done():
            await self.clock.advance(0.5)
        await self.station.idle()
        return task.result()

    async def drive(self, coro: Awaitable[T], step: float = 0.5, limit: float = 3600) -> T:
        """Await ``coro`` while simulated time passes (for commands that wait on the clock, like a print grace).
        Each step also leaves the command a moment of real time: a wipe's file work runs in threads, and on a loaded
        machine 3600 simulated seconds of bare loop turns went by before a thread was done ("never finished"). So
        the bound is both ``limit`` simulated seconds and ``REAL_LIMIT`` real ones: the simulated clock must not
        race the threads."""
        task = asyncio.ensure_future(coro)
        waited, started = 0.0, time.monotonic()
        while not task.done():
            await self.clock.advance(step)
            await asyncio.wait({task}, timeout=REAL_PAUSE)
            waited += step
            if waited >= limit and time.monotonic() - started > REAL_LIMIT:
                task.cancel()
                raise AssertionError(f"the command never finished ({waited:.0f} simulated s, {REAL_LIMIT:.0f} real s)")
        return task.result()

    async def run(self, seconds: float, step: float = 1.0) -> None:
        """Let simulated time pass, a step at a time, letting background commands finish."""
        for _ in range(int(seconds / step)):
            await self.clock.advance(step)
        await self.station.idle()

    @property
    def history(self) -> SimHistory:
        """The simulated van's timeline (every recorded change, with its simulated time)."""
        assert isinstance(self.devices.simulation, VanSimulation), "the rig runs on the simulated van"
        return self.devices.simulation.history

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def make_rig(tmp_path: Path, profile: Profile | None = None, clock: ManualClock | None = None) -> Rig:
    clock = clock or ManualClock()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    events: list[Event] = []
    bus.subscribe(events.append)
    runtime, state = tmp_path / "run", tmp_path / "state"
    runtime.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    profile = profile or sim_profile(station={"workspace": "directory"})
    devices = build_devices(profile, clock, bus.publish_threadsafe, runtime)
    store = Store(state / "kioskd.sqlite", uptime=clock.monotonic)
    sessions = Sessions(runtime / "sessions", state, devices, clock, profile.station)
    station = Station(profile, devices, bus, clock, sessions, store=store)
    for _, device in devices.all():
        await device.start()
    return Rig(station, clock, bus, devices, events, runtime, state)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.station.close()
    for _, device in r.devices.all():
        await device.close()


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(str(path) + "/")]


@pytest.fixture(autouse=True)
def _no_mount_left_behind(tmp_path: Path) -> Iterator[None]:
    """A test that leaves a session tmpfs mounted (a killed daemon) gets it unmounted, deepest first."""
    yield
    for point in sorted(mounts_under(tmp_path), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def _sigpipe_ignored() -> bool:
    status = Path("/proc/self/status").read_text().splitlines()
    return bool(int(next(x for x in status if x.startswith("SigIgn:")).split()[1], 16) & (1 << (signal.SIGPIPE - 1)))


@pytest.fixture(autouse=True)
def _sigpipe_stays_ignored() -> Iterator[None]:
    """A library that sets SIGPIPE back to its default (libsane's reader threads do) would let the next write to a
    closed socket kill the process: kioskd in a van, the test runner here. Such a test fails (and the default is
    mended so the other tests still run)."""
    yield
    if not _sigpipe_ignored():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        pytest.fail("SIGPIPE is no longer ignored after this test (see kioskd/daemon.py's main)")
