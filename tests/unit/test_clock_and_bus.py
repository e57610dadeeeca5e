"""The injected clocks and the event bus."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest

from kioskd.bus import EventBus
from kioskd.clock import ManualClock, SimClock
from kioskd.hal import Event, ShoreChanged


async def test_manual_clock_fires_timers_in_time_order_at_their_own_time() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(5, lambda: fired.append(("b", clock.monotonic())))
    clock.call_later(2, lambda: fired.append(("a", clock.monotonic())))
    handle = clock.call_later(3, lambda: fired.append(("cancelled", clock.monotonic())))
    handle.cancel()
    await clock.advance(4)
    assert fired == [("a", 2.0)]
    await clock.advance(10)
    assert fired == [("a", 2.0), ("b", 5.0)]
    assert clock.monotonic() == 14


async def test_manual_clock_sleep_wakes_only_when_time_reaches_it() -> None:
    clock = ManualClock()
    task = asyncio.ensure_future(clock.sleep(60))
    await clock.advance(59)
    assert not task.done()
    await clock.advance(1)
    assert task.done()


async def test_sim_clock_runs_faster_than_real_time() -> None:
    clock = SimClock(speed=1000, start_wall=0)
    start = clock.monotonic()
    real = time.monotonic()
    await clock.sleep(100)  # 0.1 s of real time
    elapsed_sim = clock.monotonic() - start
    elapsed_real = time.monotonic() - real
    assert elapsed_sim >= 100
    assert elapsed_real < 5  # an upper bound for waiting, not a speed claim
    assert clock.wall() == pytest.approx(clock.monotonic(), abs=1.0)  # start_wall=0: wall is the sim time


async def test_sim_clock_at_real_pace_keeps_timers_on_their_simulated_deadline() -> None:
    """A scenario step's real work (a scan on a loaded machine) must not become simulated minutes: inside
    at_real_pace a 60 s simulated timer waits 60 real seconds' worth, and fires at its deadline once the pace is
    back."""
    clock = SimClock(speed=10_000, start_wall=0)  # 60 simulated seconds are 6 ms of real time
    fired: list[float] = []
    with clock.at_real_pace():
        # the timer is set at the real pace: set before it, the 6 ms until ``with`` could pass on a loaded machine
        start = clock.monotonic()
        clock.call_later(60, lambda: fired.append(clock.monotonic()))
        await asyncio.sleep(0.1)  # 0.1 s of real work: 1,000 simulated seconds at full speed
        assert not fired, "the timer fired while time passed at the real pace"
        assert clock.monotonic() - start < 30  # real seconds, however loaded the machine: not 1,000
    waited = 0.0
    while not fired and waited < 5:
        await asyncio.sleep(0.01)
        waited += 0.01
    assert fired and fired[0] >= start + 60
    cancelled: list[int] = []
    timer = clock.call_later(30, lambda: cancelled.append(1))
    with clock.at_real_pace():
        timer.cancel()  # a cancelled timer stays cancelled across a change of pace
    await clock.sleep(60)
    assert not cancelled


@dataclass(frozen=True)
class Other(Event):
    n: int


async def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    seen: list[Event] = []

    def broken(_: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    bus.publish(ShoreChanged(True))
    assert seen == [ShoreChanged(True)]


async def test_subscribers_get_only_their_kind_and_can_unsubscribe() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    shore: list[Event] = []
    unsubscribe = bus.subscribe(shore.append, ShoreChanged)
    bus.publish(Other(1))
    bus.publish(ShoreChanged(False))
    unsubscribe()
    bus.publish(ShoreChanged(True))
    assert shore == [ShoreChanged(False)]


async def test_events_from_a_driver_thread_are_delivered_on_the_loop_thread() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    delivered_on: list[int] = []
    bus.subscribe(lambda _: delivered_on.append(threading.get_ident()))
    worker = threading.Thread(target=lambda: bus.publish_threadsafe(ShoreChanged(True)))
    worker.start()
    worker.join()
    for _ in range(50):
        if delivered_on:
            break
        await asyncio.sleep(0.01)
    assert delivered_on == [threading.get_ident()]


async def test_a_full_stream_queue_drops_the_oldest_event() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    queue, _ = bus.queue(Other, maxsize=2)
    for n in range(3):
        bus.publish(Other(n))
    assert [queue.get_nowait(), queue.get_nowait()] == [Other(1), Other(2)]
