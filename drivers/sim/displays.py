"""Simulated agent and citizen screens: mirror, curtain (privacy), the agent's curtain (confidential entry), power,
cable hotplug and the clipboard. Lit screens draw on the simulated battery. Its verb: output."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from drivers.sim.power import SimPower
from drivers.sim.van import SimView, choice
from kioskd.hal import (
    DeviceKind,
    DisplayLayout,
    DisplaysChanged,
    DisplaysState,
    DriverContext,
    DriverOptions,
    Output,
    OutputConnected,
    OutputDisconnected,
    StateEvent,
)


class SimDisplays(SimView):
    kind: ClassVar[DeviceKind] = "displays"
    options_model: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = DisplaysState(
            (Output("HDMI-1", "agent", True, 1920, 1080), Output("HDMI-2", "citizen", True, 1920, 1080)),
            mirrored=False,
            curtain=False,
            powered=False,
        )
        self.clipboard = ""

    @property
    def state(self) -> DisplaysState:
        return self._state

    def changed(self) -> StateEvent:
        return DisplaysChanged(self._state)

    async def set_mirror(self, on: bool) -> None:
        self.set(mirrored=on)

    async def set_curtain(self, on: bool) -> None:
        self.set(curtain=on)

    async def set_power(self, on: bool) -> None:
        self.set(powered=on)

    async def set_agent_curtain(self, on: bool) -> None:
        self.set(agent_curtain=on)

    async def clear_clipboard(self) -> None:
        self.clipboard = ""
        self.record("clipboard", "cleared")

    def set(self, **changes: Any) -> None:
        power = self.van.part("power")
        if "powered" in changes and isinstance(power, SimPower):
            power.set_load(in_session=changes["powered"])  # lit screens, warm printer: the station's own load
        self._state = laid_out(replace(self._state, **changes))
        self.record("set", changes)
        self.publish()

    def plug_output(self, role: str, connected: bool) -> None:
        outputs = []
        for out in self._state.outputs:
            if out.role == role and out.connected != connected:
                out = replace(out, connected=connected)
                self.emit(OutputConnected(out.name, out.role) if connected else OutputDisconnected(out.name, out.role))
            outputs.append(out)
        self.set(outputs=tuple(outputs))

    async def verb_output(self, args: list[str]) -> str:
        """output agent|citizen plug|unplug: a screen's cable"""
        role = choice(args, "output", ("agent", "citizen"))
        self.plug_output(role, choice(args[1:], "output", ("plug", "unplug")) == "plug")
        return f"output {role} {args[1]}"


def laid_out(displays: DisplaysState) -> DisplaysState:
    """The layout the flags mean, with the citizen screen beside the agent's unless it mirrors it (as xrandr does)."""
    layout: DisplayLayout = (
        "off"
        if not displays.powered
        else "curtain"
        if displays.curtain
        else "confidential"
        if displays.agent_curtain
        else "mirror"
        if displays.mirrored
        else "extended"
    )
    agent_width = next((o.width for o in displays.outputs if o.role == "agent"), 0)
    citizen_width = next((o.width for o in displays.outputs if o.role == "citizen"), 0)
    beside = layout in ("curtain", "extended")

    def x(out: Output) -> int:
        if layout == "confidential":  # the citizen at the picture's origin, the agent's screen beside it
            return citizen_width if out.role == "agent" else 0
        return agent_width if beside and out.role == "citizen" else 0

    outputs = tuple(replace(o, x=x(o)) for o in displays.outputs)
    return replace(displays, outputs=outputs, layout=layout)
