"""Simulated input devices: a touchscreen and a keyboard on the citizen's side, the agent's keyboard and mouse;
enabled or not, the touchscreen mapped onto the citizen's output as X would (``output_matrix``). Its verbs: ``type``
(a key on one side: delivered or ignored, as the session app's page would see it) and ``inputs stuck`` (a device
that refuses to change, for the wipe's verification)."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimView, choice
from kioskd.hal import (
    DeviceKind,
    DriverContext,
    DriverOptions,
    InputDevice,
    InputsChanged,
    InputSide,
    InputsState,
    Output,
    StateEvent,
    output_matrix,
)


class SimInputsOptions(DriverOptions):
    citizen_touch: bool = Field(True, description="a touchscreen on the citizen's screen")
    citizen_keyboard: bool = Field(True, description="a keyboard on the citizen's side")


class SimInputs(SimView):
    kind: ClassVar[DeviceKind] = "inputs"
    options_model: ClassVar[type[SimInputsOptions]] = SimInputsOptions

    def __init__(self, ctx: DriverContext) -> None:
        options = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        devices = [
            InputDevice("agent keyboard", "agent", "keyboard", True),
            InputDevice("agent mouse", "agent", "pointer", True),
        ]
        if options.citizen_touch:
            devices.append(InputDevice("citizen touch", "citizen", "touch", False))
        if options.citizen_keyboard:
            devices.append(InputDevice("citizen keyboard", "citizen", "keyboard", False))
        self._state = InputsState(tuple(devices), citizen=False, agent=True)
        self.stuck = False  # a device that ignores what it is told (the wipe must notice)
        self.delivered: dict[InputSide, int] = {"citizen": 0, "agent": 0}  # keys that reached the page, per side

    @property
    def state(self) -> InputsState:
        return self._state

    def changed(self) -> StateEvent:
        return InputsChanged(self._state)

    async def set_enabled(self, side: InputSide, on: bool) -> None:
        devices = tuple(replace(d, enabled=on) if d.side == side and not self.stuck else d for d in self._state.devices)
        if side == "citizen":
            self._state = replace(self._state, devices=devices, citizen=on)
        else:
            self._state = replace(self._state, devices=devices, agent=on)
        self.record("enabled", (side, on))
        self.publish()

    async def map_citizen(self, output: Output) -> None:
        displays = self.van.part("displays")
        outputs: tuple[Output, ...] = getattr(getattr(displays, "state", None), "outputs", ())
        lit = [o for o in outputs if o.connected and o.width]
        width = max((o.x + o.width for o in lit), default=output.x + output.width)
        height = max((o.y + o.height for o in lit), default=output.y + output.height)
        matrix = output_matrix(width, height, output)
        devices = tuple(
            replace(d, mapped_to=output.name, matrix=matrix) if d.side == "citizen" and d.kind == "touch" else d
            for d in self._state.devices
        )
        if devices != self._state.devices:
            self._state = replace(self._state, devices=devices)
            self.record("mapped", (output.name, matrix))
            self.publish()

    async def restore(self) -> list[str]:
        await self.set_enabled("citizen", False)
        await self.set_enabled("agent", True)
        self.record("restore")
        return [
            f"{d.name} {'enabled' if d.enabled else 'disabled'}"
            for d in self._state.devices
            if d.enabled != (d.side == "agent")
        ]

    async def verb_type(self, args: list[str]) -> str:
        """type citizen|agent: a key pressed on that side's keyboard (delivered while its devices are enabled)"""
        side: InputSide = "citizen" if choice(args, "type", ("citizen", "agent")) == "citizen" else "agent"
        live = any(d.enabled for d in self._state.devices if d.side == side and d.kind == "keyboard")
        if live:
            self.delivered[side] += 1
        self.record("key", (side, live))
        return f"{side} key {'delivered' if live else 'ignored'}"

    async def verb_inputs(self, args: list[str]) -> str:
        """inputs stuck|mended: the devices ignore (or obey again) being enabled and disabled"""
        self.stuck = choice(args, "inputs", ("stuck", "mended")) == "stuck"
        return f"inputs {args[0]}"
