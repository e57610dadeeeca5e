"""Short press or long hold, from a button's settled down/up moments: shared by the GPIO and evdev backends.

It runs on the event loop and reports ``ButtonChanged`` (pressed or not) and ``ButtonPressed``; it knows nothing of
where the moments come from. A hold is reported while the button is still down, at the hold time (the agent sees
the LED change before letting go); a release before it is a short press; nothing is reported twice for one press."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from kioskd.hal import ButtonChanged, ButtonPressed, ButtonState, Event

log = logging.getLogger(__name__)


class PressTiming:
    """One button's presses. Times are seconds on one monotonic scale chosen by the backend (the loop's clock for
    GPIO, the kernel's event times for evdev); ``hold_time`` is real seconds: a thumb does not follow a simulated
    clock."""

    def __init__(self, hold_time: float, emit: Callable[[Event], None], state: ButtonState) -> None:
        self.hold_time = hold_time
        self._emit = emit
        self.state = state
        self._down_at: float | None = None
        self._long_sent = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def down_at(self) -> float | None:
        return self._down_at

    def down(self, at: float, loop: asyncio.AbstractEventLoop | None = None, now: float | None = None) -> None:
        """The button went down at ``at``; with ``loop``, a timer reports the hold while it stays down (``now`` is
        the present time on the same scale as ``at``, so a late hand-over still holds for ``hold_time`` in all)."""
        if self._down_at is not None:
            return
        self._down_at = at
        self._long_sent = False
        self._set_pressed(True)
        if loop is not None:
            elapsed = 0.0 if now is None else max(0.0, now - at)
            self._timer = loop.call_later(max(0.0, self.hold_time - elapsed), self._held)

    def up(self, at: float) -> None:
        """The button went up at ``at``: a short press, or a long one whose timer could not fire (events read in a
        batch, a busy loop): the times decide, not the timer."""
        if self._down_at is None:
            return
        down_at, self._down_at = self._down_at, None
        self._cancel()
        self._set_pressed(False)
        if not self._long_sent:
            self._emit(ButtonPressed(long=at - down_at >= self.hold_time))
        self._long_sent = False

    def forget(self) -> None:
        """The button went away (unplugged, closed) while perhaps down: no press is reported for it."""
        self._cancel()
        self._down_at = None
        self._long_sent = False
        self._set_pressed(False)

    def _held(self) -> None:
        self._timer = None
        if self._down_at is not None and not self._long_sent:
            self._long_sent = True
            self._emit(ButtonPressed(long=True))

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_pressed(self, pressed: bool) -> None:
        if self.state.pressed != pressed:
            self.state = replace(self.state, pressed=pressed)
            self._emit(ButtonChanged(self.state))

    def set_state(self, state: ButtonState) -> None:
        """A new presence or LED pattern, reported at once."""
        if state != self.state:
            self.state = state
            self._emit(ButtonChanged(state))
