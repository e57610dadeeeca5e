"""The GPIO backend on gpiozero's MockFactory: a shore-relay contact to ground, the ignition line, contact bounce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.power.gpio import GpioPower
from kioskd.hal import IgnitionChanged, PowerChanged, PowerSource, ProfileError, ShoreChanged
from tests.integration.power_services import Recorder, context, wait_until

pytestmark = pytest.mark.integration

# The van's wiring: the shore relay closes pin 17 to ground (active low, internal pull-up); +ACC on pin 27 through a
# divider (active high, external resistors).
WIRING = {
    "shore": {"pin": 17, "active_high": False, "pull": True, "bounce_time": 0.05},
    "ignition": {"pin": 27, "active_high": True, "bounce_time": 0.05},
}


@pytest.fixture
async def gpio(tmp_path: Path, pins: MockFactory) -> AsyncIterator[tuple[GpioPower, Recorder]]:
    events = Recorder()
    power = GpioPower(context(WIRING, events, tmp_path, "gpio"))
    await power.start()
    yield power, events
    await power.close()


async def test_levels_at_start_are_read_with_their_polarity(gpio: tuple[GpioPower, Recorder]) -> None:
    power, events = gpio
    assert isinstance(power, PowerSource)
    # The pull-up holds the shore line high: contact open, not on shore. The ignition line floats low: off.
    assert power.state.available and power.state.shore is False and power.state.ignition is False
    assert power.state.soc is None  # GPIO knows nothing of the battery
    assert events.of(PowerChanged) == [PowerChanged(power.state)]


async def test_closing_the_shore_contact_and_turning_the_key_flip_once_each(
    gpio: tuple[GpioPower, Recorder], pins: MockFactory
) -> None:
    power, events = gpio
    pins.pin(17).drive_low()
    await wait_until(lambda: power.state.shore is True, "the shore contact")
    assert events.of(ShoreChanged) == [ShoreChanged(True)]
    pins.pin(27).drive_high()
    await wait_until(lambda: power.state.ignition is True, "the ignition")
    assert events.of(IgnitionChanged) == [IgnitionChanged(True)]
    pins.pin(27).drive_low()
    await wait_until(lambda: power.state.ignition is False, "the ignition off")
    assert events.of(IgnitionChanged) == [IgnitionChanged(True), IgnitionChanged(False)]
    assert events.of(ShoreChanged) == [ShoreChanged(True)]


async def test_a_bouncing_contact_that_settles_back_changes_nothing(tmp_path: Path, pins: MockFactory) -> None:
    events = Recorder()
    # A long bounce time, so that the flaps below (paced by the loop) surely fall inside it even on a busy machine.
    wiring = {**WIRING, "shore": {**WIRING["shore"], "bounce_time": 0.5}}
    power = GpioPower(context(wiring, events, tmp_path, "gpio"))
    await power.start()
    try:
        shore = pins.pin(17)
        for _ in range(5):  # a loose plug: contact made and broken, each level seen by the loop
            shore.drive_low()
            await asyncio.sleep(0.005)
            shore.drive_high()
            await asyncio.sleep(0.005)
        await wait_until(lambda: not power.settling, "the end of the bounce window")
        assert events.of(ShoreChanged) == []
        assert all(event.state.shore is False for event in events.of(PowerChanged))

        shore.drive_low()
        await asyncio.sleep(0.005)
        shore.drive_high()
        await asyncio.sleep(0.005)
        shore.drive_low()  # bounces, then settles closed: the final level must win
        await wait_until(lambda: power.state.shore is True, "the settled contact")
        assert events.of(ShoreChanged) == [ShoreChanged(True)]
    finally:
        await power.close()


def test_a_profile_without_any_line_is_refused(tmp_path: Path) -> None:
    options: dict[str, Any] = {}
    with pytest.raises(ProfileError, match="at least one input"):
        GpioPower(context(options, Recorder(), tmp_path, "gpio"))
    with pytest.raises(ProfileError, match="bounce_time"):
        GpioPower(context({"shore": {"pin": 17, "bounce_time": -1}}, Recorder(), tmp_path, "gpio"))
