"""A backend's background task (drivers/backend_task.py): a loop that dies of an error it did not catch is a fault the
agent sees, and runs again after a growing pause, until it holds; ``close()`` still ends it, even while it waits."""

from __future__ import annotations

import asyncio
import itertools
import time

from drivers.backend_task import FAILED, BackgroundTask
from kioskd import messages
from kioskd.hal import DeviceFault, Event


async def test_a_loop_that_crashes_is_a_fault_restarted_with_a_backoff_and_cleared_once_it_holds() -> None:
    told: list[Event] = []
    runs: list[float] = []
    holding = asyncio.Event()

    async def run() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise OSError("the port went away in a way the loop did not expect")
        holding.set()
        await asyncio.sleep(3600)  # a loop that now reads its device for ever

    task = BackgroundTask("test", "power", told.append, first_backoff=0.05, max_backoff=1.0, healthy_after=0.2)
    task.start(run)
    await asyncio.wait_for(holding.wait(), 10)
    assert task.crashes == 3
    pauses = [b - a for a, b in itertools.pairwise(runs)]
    assert pauses[0] >= 0.05 and pauses[1] >= 0.1 and pauses[2] >= 0.2, f"the pause doubles: {pauses}"
    assert told == [DeviceFault("power", FAILED)], "told once, however many times it fails"
    await asyncio.sleep(0.4)
    assert told[-1] == DeviceFault("power", FAILED, cleared=True), "a run that holds clears it"
    assert FAILED in messages.CATALOGUE
    await task.close()
    assert not task.running


async def test_close_ends_a_task_waiting_to_restart() -> None:
    async def run() -> None:
        raise RuntimeError("always")

    task = BackgroundTask("test", first_backoff=3600)
    task.start(run)
    await asyncio.sleep(0.05)
    assert task.crashes == 1
    await asyncio.wait_for(task.close(), 2)
