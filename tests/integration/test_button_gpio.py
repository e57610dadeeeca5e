"""The GPIO button and LED on gpiozero's MockFactory: short press, hold, contact bounce, and the LED's pin over time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from drivers.button.gpio import GpioButton
from kioskd.clock import RealClock
from kioskd.hal import LED_CYCLES, Button, ButtonChanged, ButtonPressed, DriverContext, LedPattern, ProfileError
from tests.integration.power_services import Recorder, wait_until

pytestmark = pytest.mark.integration

BUTTON, LED = 17, 22
# Short times so that a hold takes a second, not three; the button closes pin 17 to ground (internal pull-up).
WIRING: dict[str, Any] = {"pin": BUTTON, "bounce_time": 0.05, "hold_time": 1.0, "led": LED}


def context(options: dict[str, Any], emit: Recorder, runtime_dir: Path) -> DriverContext:
    return DriverContext("button", "gpio", options, RealClock(), emit, runtime_dir, source="test-profile.toml")


@pytest.fixture
async def button(tmp_path: Path, pins: MockFactory) -> AsyncIterator[tuple[GpioButton, Recorder]]:
    events = Recorder()
    backend = GpioButton(context(WIRING, events, tmp_path))
    await backend.start()
    yield backend, events
    await backend.close()


async def test_a_short_press_is_reported_once_on_release(
    button: tuple[GpioButton, Recorder], pins: MockFactory
) -> None:
    backend, events = button
    assert isinstance(backend, Button)
    assert backend.state.present and not backend.state.pressed
    pin = pins.pin(BUTTON)
    pin.drive_low()
    await wait_until(lambda: backend.state.pressed, "the press")
    assert events.of(ButtonPressed) == []
    await asyncio.sleep(0.2)
    pin.drive_high()
    await wait_until(lambda: events.of(ButtonPressed), "the short press")
    await asyncio.sleep(0.2)
    assert events.of(ButtonPressed) == [ButtonPressed(long=False)]
    assert [e.state.pressed for e in events.of(ButtonChanged)] == [False, True, False]


async def test_a_hold_is_reported_at_the_hold_time_while_still_held_and_not_again_on_release(
    button: tuple[GpioButton, Recorder], pins: MockFactory
) -> None:
    backend, events = button
    pin = pins.pin(BUTTON)
    pressed_at = time.monotonic()
    pin.drive_low()
    await wait_until(lambda: events.of(ButtonPressed), "the hold")
    held_after = time.monotonic() - pressed_at
    assert held_after >= 1.0, "reported before the hold time"
    assert backend.state.pressed, "the hold is reported while the button is still down"
    pin.drive_high()
    await wait_until(lambda: not backend.state.pressed, "the release")
    await asyncio.sleep(0.2)
    assert events.of(ButtonPressed) == [ButtonPressed(long=True)]


async def test_a_press_released_just_before_the_hold_time_is_short(
    button: tuple[GpioButton, Recorder], pins: MockFactory
) -> None:
    _, events = button
    pin = pins.pin(BUTTON)
    pin.drive_low()
    await asyncio.sleep(0.7)
    pin.drive_high()
    await wait_until(lambda: events.of(ButtonPressed), "the press")
    await asyncio.sleep(0.5)  # past the hold time counted from the press: no hold may follow
    assert events.of(ButtonPressed) == [ButtonPressed(long=False)]


async def test_a_bouncing_contact_makes_one_press_and_a_glitch_none(tmp_path: Path, pins: MockFactory) -> None:
    events = Recorder()
    # A long bounce time, so that the flaps below (paced by the loop) surely fall inside it on a busy machine.
    backend = GpioButton(context({**WIRING, "bounce_time": 0.3}, events, tmp_path))
    await backend.start()
    try:
        pin = pins.pin(BUTTON)
        pin.drive_low()  # a glitch: down and up again within the bounce time
        await asyncio.sleep(0.01)
        pin.drive_high()
        await asyncio.sleep(0.6)
        assert events.of(ButtonPressed) == [] and not backend.state.pressed

        for _ in range(4):  # a real press: the contact chatters, then stays closed
            pin.drive_low()
            await asyncio.sleep(0.01)
            pin.drive_high()
            await asyncio.sleep(0.01)
        pin.drive_low()
        await wait_until(lambda: backend.state.pressed, "the settled press")
        await asyncio.sleep(0.1)
        for _ in range(3):  # and chatters on release
            pin.drive_high()
            await asyncio.sleep(0.01)
            pin.drive_low()
            await asyncio.sleep(0.01)
        pin.drive_high()
        await wait_until(lambda: events.of(ButtonPressed), "the press")
        await asyncio.sleep(0.4)
        assert events.of(ButtonPressed) == [ButtonPressed(long=False)]
        assert [e.state.pressed for e in events.of(ButtonChanged) if e.state.present] == [False, True, False]
    finally:
        await backend.close()


def _expected(pattern: LedPattern, cycles: int) -> list[tuple[float, bool]]:
    """The LED pin's (seconds since the previous change, level) for ``cycles`` cycles of ``pattern``, from dark."""
    steps = [step for _ in range(cycles) for step in LED_CYCLES[pattern]]
    out: list[tuple[float, bool]] = []
    previous = 0.0
    for lit, seconds in steps:
        out.append((previous, lit))
        previous = seconds
    return out


@pytest.mark.parametrize(("pattern", "cycles"), [("slow", 2), ("double", 2), ("fast", 5)])
async def test_led_pin_follows_each_blink_pattern(
    button: tuple[GpioButton, Recorder], pins: MockFactory, pattern: LedPattern, cycles: int
) -> None:
    backend, _ = button
    led: MockPin = pins.pin(LED)
    assert led.state is False
    led.clear_states()
    await backend.set_led(pattern)
    expected = _expected(pattern, cycles)
    period = sum(seconds for _, seconds in LED_CYCLES[pattern])
    await asyncio.sleep(period * cycles - LED_CYCLES[pattern][-1][1] / 2)
    assert len(led.states) >= len(expected) + 1, f"{pattern}: only {len(led.states)} changes"
    # the first entry is clear_states()'s own (the level then, dark); the pattern starts lit at once
    led.assert_states_and_times([(0.0, False), *expected])
    assert backend.state.led == pattern


async def test_led_steady_then_off_holds_the_level_and_a_new_pattern_cuts_a_blink_short(
    button: tuple[GpioButton, Recorder], pins: MockFactory
) -> None:
    backend, _ = button
    led: MockPin = pins.pin(LED)
    led.clear_states()
    await backend.set_led("slow")
    await asyncio.sleep(0.3)  # lit, 0.7 s before its off step
    await backend.set_led("steady")
    await asyncio.sleep(1.2)
    await backend.set_led("off")
    await asyncio.sleep(0.5)
    # slow lights it; steady keeps it lit (no change at all); off darkens it at once, and it stays dark
    led.assert_states_and_times([(0.0, False), (0.0, True), (1.5, False)])
    assert len(led.states) == 3


def test_a_profile_with_ambiguous_polarity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="active_high"):
        GpioButton(context({"pin": 17, "pull_up": None}, Recorder(), tmp_path))
    with pytest.raises(ProfileError, match="hold_time"):
        GpioButton(context({"pin": 17, "hold_time": 0.1}, Recorder(), tmp_path))
