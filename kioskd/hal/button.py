"""The button contract: the station's one button, its LED and the patterns the LED plays, and the press event.

What a press does (start, next citizen, end of day) is the station's rule, not the backend's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent

# What the LED tells an agent without a screen (README, "Le voyant"): off = station off; slow blink = starting,
# wiping or shutting down; steady = ready; double blink = a citizen's session; fast blink = needs attention.
LedPattern = Literal["off", "steady", "slow", "double", "fast"]
# Each pattern as one cycle of (lit, seconds) steps, repeated; LED backends play it, the README describes it.
LED_CYCLES: dict[LedPattern, tuple[tuple[bool, float], ...]] = {
    "off": ((False, 0.0),),
    "steady": ((True, 0.0),),
    "slow": ((True, 1.0), (False, 1.0)),
    "double": ((True, 0.15), (False, 0.15), (True, 0.15), (False, 1.05)),
    "fast": ((True, 0.1), (False, 0.1)),
}


@dataclass(frozen=True)
class ButtonState:
    present: bool = False
    pressed: bool = False
    led: LedPattern = "off"


@dataclass(frozen=True)
class ButtonChanged(StateEvent):
    device: ClassVar[DeviceKind] = "button"
    state: ButtonState


@dataclass(frozen=True)
class ButtonPressed(Event):
    long: bool  # a hold of at least the profile's hold time


@runtime_checkable
class Button(Device, Protocol):
    """The station's one button and its LED (gpiozero, evdev).

    MUST: ``state``; one ``ButtonPressed`` per settled press (``long`` for a hold of the profile's hold time);
    ``set_led`` plays ``LED_CYCLES[pattern]`` and shows the pattern in ``state``. MAY: have no LED of its own to
    drive (a USB key): the pattern is then only shown in ``state``."""

    @property
    def state(self) -> ButtonState: ...

    async def set_led(self, pattern: LedPattern) -> None: ...
