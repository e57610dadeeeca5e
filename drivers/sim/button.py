"""Simulated button and LED: a press or a hold of so many simulated seconds; the LED pattern is recorded on the
van's timeline. Its verbs: press, hold."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimView, number
from kioskd.hal import (
    ButtonChanged,
    ButtonPressed,
    ButtonState,
    DeviceKind,
    DriverContext,
    DriverOptions,
    LedPattern,
    StateEvent,
)


class SimButtonOptions(DriverOptions):
    hold_time: float = Field(3.0, ge=0.5, le=30)


class SimButton(SimView):
    kind: ClassVar[DeviceKind] = "button"
    options_model: ClassVar[type[SimButtonOptions]] = SimButtonOptions

    def __init__(self, ctx: DriverContext) -> None:
        opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = ButtonState(True, False, "off")
        self.hold_time = opts.hold_time

    @property
    def state(self) -> ButtonState:
        return self._state

    def changed(self) -> StateEvent:
        return ButtonChanged(self._state)

    async def set_led(self, pattern: LedPattern) -> None:
        if self._state.led != pattern:
            self._state = replace(self._state, led=pattern)
            self.record("led", pattern)
            self.publish()

    async def press(self, seconds: float) -> None:
        self._state = replace(self._state, pressed=True)
        self.record("pressed", True)
        self.publish()
        await self.clock.sleep(seconds)
        self._state = replace(self._state, pressed=False)
        self.record("pressed", False)
        self.publish()
        self.emit(ButtonPressed(long=seconds >= self.hold_time))

    async def verb_press(self, args: list[str]) -> str:
        """press: a short press of the button"""
        await self.press(0.2)
        return "button pressed"

    async def verb_hold(self, args: list[str]) -> str:
        """hold [SECONDS]: hold the button (default: the hold time)"""
        await self.press(number(args, "hold", 0, 60) if args else self.hold_time)
        return "button held"
