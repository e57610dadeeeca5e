"""The station's button and its LED on GPIO pins, through gpiozero (a Raspberry Pi or a board gpiozero knows).

gpiozero calls back on its own thread: the callback only stamps the edge and hands it to the event loop, where the
contact is debounced and the press timed (``drivers.button.press``). The LED plays its pattern on a worker thread of
its own, so a blink never waits for the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any, ClassVar

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from pydantic import Field, model_validator

from drivers.button.press import PressTiming
from kioskd.hal import LED_CYCLES, ButtonState, DriverContext, DriverOptions, LedPattern

log = logging.getLogger(__name__)


class GpioButtonOptions(DriverOptions):
    pin: int | str = Field(description="the button's pin as gpiozero names it: 17, 'GPIO17', 'BOARD11'")
    pull_up: bool | None = Field(
        True,
        description="true: internal pull-up, the button closes to ground; false: pull-down, closes to 3.3 V; "
        "null: external resistors (then say active_high)",
    )
    active_high: bool | None = Field(None, description="with pull_up = null: whether a pressed button reads high")
    bounce_time: float = Field(0.05, ge=0, le=1, description="seconds a new level must hold before it counts")
    hold_time: float = Field(3.0, ge=0.5, le=30, description="seconds of a long press (end of day)")
    led: int | str | None = Field(None, description="the LED's pin; none: no LED")
    led_active_high: bool = Field(True, description="false when the LED lights with the pin low (wired to 3.3 V)")

    @model_validator(mode="after")
    def _polarity(self) -> GpioButtonOptions:
        if self.pull_up is None and self.active_high is None:
            raise ValueError("with pull_up = null (external resistors), say active_high = true or false")
        if self.pull_up is not None and self.active_high is not None:
            raise ValueError("active_high goes with pull_up = null only (a pull resistor sets the polarity)")
        return self


class LedPlayer:
    """Plays one ``LedPattern`` after another on an output pin, from a thread of its own (gpiozero's ``blink``
    knows no double blink). A new pattern interrupts the current step at once."""

    def __init__(self, output: Any) -> None:
        self._output = output
        self._pattern: LedPattern = "off"
        self._changed = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._play, name="kioskd-led", daemon=True)
        self._thread.start()

    def set(self, pattern: LedPattern) -> None:
        if pattern != self._pattern:
            self._pattern = pattern
            self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()
        self._thread.join(timeout=2)

    def _play(self) -> None:
        while not self._closed:
            self._changed.clear()
            cycle = LED_CYCLES[self._pattern]
            if len(cycle) == 1:  # off or steady: nothing to time
                self._output.value = cycle[0][0]
                self._changed.wait()
                continue
            interrupted = False
            while not interrupted:
                for lit, seconds in cycle:
                    self._output.value = lit
                    if self._changed.wait(seconds):
                        interrupted = True
                        break
        with contextlib.suppress(Exception):  # the pin may be closed already
            self._output.value = False


class GpioButton:
    """A ``Button``: short press = start / next citizen, hold = end of day; the LED says what the station does.

    Debouncing is done here, not with gpiozero's ``bounce_time``: gpiozero drops the edges that follow an edge within
    the bounce time, so a contact that settles in the other state could be missed for good (and its mock pins do not
    model bounce at all); a level counts once it has been quiet for ``bounce_time``, from the first edge of that
    quiet stretch."""

    options_model: ClassVar[type[GpioButtonOptions]] = GpioButtonOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._timing = PressTiming(self.options.hold_time, ctx.emit, ButtonState())
        self._input: Any = None
        self._led: LedPlayer | None = None
        self._led_output: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle: asyncio.TimerHandle | None = None
        self._edge_at = 0.0

    @property
    def state(self) -> ButtonState:
        return self._timing.state

    async def start(self) -> None:
        if self._input is not None:
            return
        self._loop = asyncio.get_running_loop()
        opts = self.options
        try:
            self._input = DigitalInputDevice(opts.pin, pull_up=opts.pull_up, active_state=opts.active_high)
            self._input.when_activated = self._input.when_deactivated = self._edge
            if opts.led is not None:
                self._led_output = DigitalOutputDevice(opts.led, active_high=opts.led_active_high)
                self._led = LedPlayer(self._led_output)
        except Exception:
            self._release()
            raise
        self._timing.set_state(ButtonState(present=True, led=self._timing.state.led))
        if self._input.is_active:  # held through the start: counts from now
            self._timing.down(time.monotonic(), self._loop, time.monotonic())

    async def close(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        self._timing.forget()
        self._release()
        self._timing.set_state(ButtonState(present=False, led=self._timing.state.led))

    def _release(self) -> None:
        if self._led is not None:
            self._led.close()
            self._led = None
        for device in (self._input, self._led_output):
            if device is not None:
                if device is self._input:
                    device.when_activated = device.when_deactivated = None
                device.close()
        self._input = self._led_output = None

    async def set_led(self, pattern: LedPattern) -> None:
        if self._led is not None:
            self._led.set(pattern)
        self._timing.set_state(ButtonState(present=self._input is not None, pressed=self.state.pressed, led=pattern))

    # ------------------------------------------------------------------------------------------- edges
    def _edge(self) -> None:
        """On gpiozero's thread: stamp the edge, hand it over."""
        at = time.monotonic()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the daemon is going down
            loop.call_soon_threadsafe(self._restart_settle, at)

    def _restart_settle(self, at: float) -> None:
        if self._input is None or self._loop is None:
            return
        if self._settle is not None:
            self._settle.cancel()
        self._edge_at = at
        delay = max(0.0, self.options.bounce_time - (time.monotonic() - at))
        self._settle = self._loop.call_later(delay, self._settled)

    def _settled(self) -> None:
        self._settle = None
        if self._input is None:
            return
        if self._input.is_active:
            self._timing.down(self._edge_at, self._loop, time.monotonic())
        else:
            self._timing.up(self._edge_at)
