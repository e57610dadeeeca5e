"""The input devices contract: the citizen's own devices (a touchscreen on the citizen's screen, a keyboard and a
mouse on the citizen's side) and the agent's, each enabled or not, and an absolute device's mapping onto the
citizen's output. It says what enabled and mapped mean, not when (the hand-over rules are the hand-over policy's).

The mapping is X's "Coordinate Transformation Matrix" as ``xinput map-to-output`` computes it (``output_matrix``),
so that every backend and the tests share one piece of arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, StateEvent
from kioskd.hal.displays import Output

InputSide = Literal["citizen", "agent"]
# touch: an absolute pointer (a touchscreen, qemu's usb-tablet); pointer: a mouse; keyboard: keys
InputKind = Literal["touch", "pointer", "keyboard"]
Matrix = tuple[float, float, float, float, float, float, float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class InputDevice:
    name: str  # as the backend knows it (the X device's name); never anything a citizen typed
    side: InputSide
    kind: InputKind
    enabled: bool
    mapped_to: str = ""  # the output an absolute device is mapped onto ("" when not mapped)
    matrix: Matrix = IDENTITY


@dataclass(frozen=True)
class InputsState:
    devices: tuple[InputDevice, ...] = ()
    citizen: bool = False  # the citizen's devices are live (what was asked; ``devices`` says what is)
    agent: bool = True  # the agent's devices are live
    detail: str = ""  # technician's detail, e.g. a profiled device not found


@dataclass(frozen=True)
class InputsChanged(StateEvent):
    device: ClassVar[DeviceKind] = "inputs"
    state: InputsState


def output_matrix(screen_width: int, screen_height: int, output: Output) -> Matrix:
    """The transformation that maps an absolute device's whole range onto ``output``'s rectangle of a screen of
    ``screen_width`` × ``screen_height``: xinput's ``set_transformation_matrix`` for an unrotated CRTC (the
    displays backends never rotate): scale by the output's share of the screen, offset by its position."""
    if screen_width <= 0 or screen_height <= 0 or output.width <= 0 or output.height <= 0:
        return IDENTITY
    return (
        output.width / screen_width,
        0.0,
        output.x / screen_width,
        0.0,
        output.height / screen_height,
        output.y / screen_height,
        0.0,
        0.0,
        1.0,
    )


@runtime_checkable
class Inputs(Device, Protocol):
    """The citizen's and the agent's input devices (XInput2 on the station's X server).

    MUST: ``state`` with one ``InputDevice`` per device found; ``set_enabled`` turns one side's devices on or off
    (a device that appears later takes the side's setting); ``map_citizen`` maps the citizen's absolute devices
    onto that output's rectangle (again when a device appears); ``restore`` (the wipe) turns the citizen's devices
    off and the agent's on, reads them back and returns what is not so (empty: verified)."""

    @property
    def state(self) -> InputsState: ...

    async def set_enabled(self, side: InputSide, on: bool) -> None: ...

    async def map_citizen(self, output: Output) -> None: ...

    async def restore(self) -> list[str]: ...
