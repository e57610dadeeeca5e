"""The displays contract: the agent's screen and the citizen's, their layout (mirror, curtain), and hotplug events.

It says what a layout means, not when to choose one (the curtain and travel rules are the displays policy's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent

OutputRole = Literal["agent", "citizen", "other"]
# mirror: the citizen sees the agent's picture; curtain: the citizen sees the neutral page; extended: side by side
# (no common mode to mirror at, or mirroring turned off); confidential: the citizen sees the agent's picture (the
# page the citizen types into) while the agent's own screen shows a curtain of its own; off: no output lit.
DisplayLayout = Literal["mirror", "curtain", "extended", "confidential", "off"]


@dataclass(frozen=True)
class Output:
    name: str
    role: OutputRole
    connected: bool
    width: int = 0  # the mode shown now; 0×0 when the output is off
    height: int = 0
    x: int = 0  # where the output's picture starts in the whole screen
    y: int = 0


@dataclass(frozen=True)
class DisplaysState:
    outputs: tuple[Output, ...] = ()
    mirrored: bool = False
    curtain: bool = False  # privacy: the citizen screen shows a neutral page instead of the agent's
    agent_curtain: bool = False  # confidential entry: the agent's screen is covered while the citizen types
    powered: bool = False
    layout: DisplayLayout = "off"
    detail: str = ""  # technician's detail, e.g. which mode the mirror fell back to and why


@dataclass(frozen=True)
class DisplaysChanged(StateEvent):
    device: ClassVar[DeviceKind] = "displays"
    state: DisplaysState


@dataclass(frozen=True)
class OutputConnected(Event):
    name: str
    role: OutputRole


@dataclass(frozen=True)
class OutputDisconnected(Event):
    name: str
    role: OutputRole


@runtime_checkable
class Displays(Device, Protocol):
    """The agent's screen and the citizen-facing one (xrandr, wlroots).

    MUST: ``state`` with one ``Output`` per known connector and the ``layout`` the flags give; ``set_mirror``,
    ``set_curtain`` (the citizen screen never shows the agent's picture while it is on), ``set_agent_curtain``
    (the agent's screen never shows it while it is on), ``set_power`` and
    ``clear_clipboard``; ``OutputConnected``/``OutputDisconnected`` on a cable's hotplug. MAY: fall back to
    ``extended`` when no common mode exists, saying why in ``detail``."""

    @property
    def state(self) -> DisplaysState: ...

    async def set_mirror(self, on: bool) -> None: ...

    async def set_curtain(self, on: bool) -> None:
        """Privacy mode: the citizen screen stops mirroring the agent's."""
        ...

    async def set_power(self, on: bool) -> None: ...

    async def set_agent_curtain(self, on: bool) -> None:
        """Confidential entry: the agent's screen shows a curtain of its own ("Le citoyen saisit une information
        confidentielle") while the citizen's shows the agent's picture; the privacy curtain wins over it."""
        ...

    async def clear_clipboard(self) -> None:
        """Empty every selection of the session's display (the wipe: a citizen's copied password)."""
        ...
