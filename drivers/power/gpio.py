"""Shore and ignition as GPIO inputs through gpiozero: a shore-relay contact and the ignition (+ACC) line.

gpiozero calls back on its own thread; the callbacks only hand the edge to the event loop, where the level is
debounced and read. It never drives a pin (inputs only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any, ClassVar, Literal

from gpiozero import DigitalInputDevice
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.power.report import PowerReport
from kioskd.hal import DriverContext, DriverOptions, PowerState

log = logging.getLogger(__name__)

Line = Literal["shore", "ignition"]


class GpioInput(BaseModel):
    """One input line: ``pin`` as gpiozero names it (``17``, ``"GPIO17"``, ``"BOARD11"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pin: int | str
    active_high: bool = Field(True, description="false when the line reads low while the contact is closed")
    pull: bool = Field(False, description="use the internal resistor towards the inactive level")
    bounce_time: float = Field(0.05, ge=0, description="seconds a new level must hold before it counts")


class GpioOptions(DriverOptions):
    shore: GpioInput | None = None
    ignition: GpioInput | None = None

    @model_validator(mode="after")
    def _some_line(self) -> GpioOptions:
        if self.shore is None and self.ignition is None:
            raise ValueError("name at least one input: shore = { pin = … } or ignition = { pin = … }")
        return self


class GpioPower:
    """A ``PowerSource`` that knows only shore and ignition (combine it with a battery monitor for the charge).

    Debouncing is done here on the loop rather than with gpiozero's ``bounce_time``: gpiozero drops the edges that
    follow an edge within the bounce time, so a contact that settles in the other state could be missed for good;
    reading the level once it has been quiet for ``bounce_time`` always ends on the true level. Timers are real
    seconds (a contact bounces in real time, whatever the injected clock says)."""

    options_model: ClassVar[type[GpioOptions]] = GpioOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._report = PowerReport(ctx.emit)
        self._inputs: dict[Line, Any] = {}  # gpiozero devices
        self._levels: dict[Line, bool] = {}  # debounced
        self._settle: dict[Line, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state(self) -> PowerState:
        return self._report.state

    @property
    def settling(self) -> tuple[Line, ...]:
        """The lines that moved less than their bounce time ago (their level is not reported yet)."""
        return tuple(self._settle)

    async def start(self) -> None:
        if self._inputs:
            return
        self._loop = asyncio.get_running_loop()
        lines: list[tuple[Line, GpioInput | None]] = [
            ("shore", self.options.shore),
            ("ignition", self.options.ignition),
        ]
        try:
            for line, spec in lines:
                if spec is None:
                    continue
                device = DigitalInputDevice(
                    spec.pin,
                    pull_up=(not spec.active_high) if spec.pull else None,
                    active_state=None if spec.pull else spec.active_high,
                )
                self._inputs[line] = device
                device.when_activated = device.when_deactivated = partial(self._edge, line)
                self._levels[line] = bool(device.is_active)
        except Exception:
            self._close_inputs()
            raise
        self._publish()

    async def close(self) -> None:
        for handle in self._settle.values():
            handle.cancel()
        self._settle.clear()
        self._close_inputs()
        self._report.forget()

    def _close_inputs(self) -> None:
        inputs, self._inputs = self._inputs, {}
        for device in inputs.values():
            device.when_activated = device.when_deactivated = None
            device.close()

    # ------------------------------------------------------------------------------------------- edges
    def _edge(self, line: Line) -> None:
        """On gpiozero's thread: only hand over."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the daemon is going down
            loop.call_soon_threadsafe(self._restart_settle, line)

    def _restart_settle(self, line: Line) -> None:
        spec = self.options.shore if line == "shore" else self.options.ignition
        if line not in self._inputs or spec is None or self._loop is None:
            return
        handle = self._settle.pop(line, None)
        if handle is not None:
            handle.cancel()
        self._settle[line] = self._loop.call_later(spec.bounce_time, self._settled, line)

    def _settled(self, line: Line) -> None:
        self._settle.pop(line, None)
        device = self._inputs.get(line)
        if device is None:
            return
        self._levels[line] = bool(device.is_active)
        self._publish()

    def _publish(self) -> None:
        self._report.publish(
            PowerState(available=True, shore=self._levels.get("shore"), ignition=self._levels.get("ignition")), []
        )
