"""Clocks that policies and simulators read instead of the system time: real, accelerated, and manual (tests).

Policy code never calls ``time.time()`` or ``asyncio.sleep``; it receives one of these as a ``kioskd.hal.Clock``."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# 2026-01-01: a PC clock before this date lost its RTC battery or never had NTP (the doctor fails it; retention
# deletes nothing by it)
CLOCK_FLOOR = 1_767_225_600


class _Cancellable:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class RealClock:
    """The wall and monotonic time of the machine; timers are the event loop's."""

    speed = 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class _SimTimer:
    """A SimClock timer: its deadline is in simulated time, so a change of pace re-schedules it."""

    def __init__(self, clock: SimClock, deadline: float, callback: Callable[[], None]) -> None:
        self.clock = clock
        self.deadline = deadline
        self.callback = callback
        self.handle: asyncio.TimerHandle | None = None
        self.cancelled = False

    def arm(self) -> None:
        delay = max(0.0, self.deadline - self.clock.monotonic()) / self.clock.pace
        self.handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self.clock._timers.discard(self)
        if not self.cancelled:
            self.callback()

    def cancel(self) -> None:
        self.cancelled = True
        self.clock._timers.discard(self)
        if self.handle is not None:
            self.handle.cancel()


class SimClock:
    """Accelerated time: ``speed`` simulated seconds pass per real second (a day on tour in a minute at 600).

    The simulated day starts at ``start_wall`` (epoch seconds) so receipts and scenario times read like a real day.
    While a scenario step runs (``at_real_pace``) time passes at the real pace: the work a step starts (a scan, a
    wipe, a session app starting) takes real seconds, and at 6000x a 0.2 s scan on a loaded machine would otherwise
    be twenty simulated minutes, long enough for the idle rule to wipe the session under the scenario's feet. Time
    never stops (a wipe waits for processes in real time), it only slows; timers keep their simulated deadlines."""

    def __init__(self, speed: float = 1.0, start_wall: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.pace = speed  # simulated seconds per real second right now: ``speed``, or 1 inside at_real_pace
        self._real0 = time.monotonic()
        self._sim0 = 0.0
        self._wall0 = time.time() if start_wall is None else start_wall
        self._timers: set[_SimTimer] = set()
        self._real_pace_depth = 0

    def monotonic(self) -> float:
        return self._sim0 + (time.monotonic() - self._real0) * self.pace

    def wall(self) -> float:
        return self._wall0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await done
        finally:
            timer.cancel()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _SimTimer:
        timer = _SimTimer(self, self.monotonic() + max(0.0, delay), callback)
        self._timers.add(timer)
        timer.arm()
        return timer

    @contextlib.contextmanager
    def at_real_pace(self) -> Iterator[None]:
        """Simulated time passes at the real pace inside this block (nested blocks count once)."""
        self._real_pace_depth += 1
        if self._real_pace_depth == 1:
            self._set_pace(1.0)
        try:
            yield
        finally:
            self._real_pace_depth -= 1
            if self._real_pace_depth == 0:
                self._set_pace(self.speed)

    def _set_pace(self, pace: float) -> None:
        now_real = time.monotonic()
        self._sim0 += (now_real - self._real0) * self.pace
        self._real0 = now_real
        self.pace = pace
        for timer in list(self._timers):
            if timer.handle is not None:
                timer.handle.cancel()
            timer.arm()


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    handle: _Cancellable = field(compare=False)


class ManualClock:
    """Time that moves only when a test calls ``advance``: timers fire in order, deterministically.

    Modelled on the deterministic timer of Victron's dbus-systemcalc tests."""

    speed = 1.0

    def __init__(self, start: float = 0.0, start_wall: float = 1_790_000_000.0) -> None:
        self._now = start
        self._wall0 = start_wall - start
        self._timers: list[_Timer] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall0 + self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Cancellable:
        handle = _Cancellable()
        heapq.heappush(self._timers, _Timer(self._now + max(0.0, delay), next(self._seq), callback, handle))
        return handle

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self.call_later(seconds, wake)
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing each due timer at its own time and letting tasks run."""
        target = self._now + seconds
        await _settle()
        while self._timers and self._timers[0].when <= target:
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.when)
            if not timer.handle.cancelled:
                timer.callback()
            await _settle()
        self._now = target
        await _settle()


async def _settle() -> None:
    """Let the tasks woken by a timer run until they wait again (a few loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)
