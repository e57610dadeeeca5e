"""The camera contract: its state, its health check (black or frozen frames), and its release between citizens.

No frame is kept or sent anywhere: the health check judges a few frames and drops them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, StateEvent


@dataclass(frozen=True)
class CameraState:
    present: bool = False
    name: str = ""
    in_use: bool = False


@dataclass(frozen=True)
class CameraHealth:
    """One health check of the camera (``kioskctl doctor``, ``GET /camera/health``): opened, a few frames grabbed,
    released. ``fault`` is a catalogue key (camera.absent, camera.black, camera.frozen) or None when it is fine."""

    ok: bool
    present: bool
    width: int = 0
    height: int = 0
    frames: int = 0  # frames grabbed
    brightness: float = 0.0  # mean luminance 0–255 over the frames
    black: bool = False
    frozen: bool = False
    fault: str | None = None
    seconds: float = 0.0
    in_use: bool = False  # another program (the session's video call) holds it: not opened, not judged


@dataclass(frozen=True)
class CameraChanged(StateEvent):
    device: ClassVar[DeviceKind] = "camera"
    state: CameraState


@runtime_checkable
class Camera(Device, Protocol):
    """The document/face camera (V4L2 through OpenCV).

    MUST: ``state`` and ``CameraChanged``; ``health`` (a missing camera is the result's ``fault``
    ``camera.absent``, not an exception); ``reset``. MAY: raise a black or frozen picture as a ``DeviceFault``
    (through ``FaultReporter``), cleared by the next good check."""

    @property
    def state(self) -> CameraState: ...

    async def health(self) -> CameraHealth:
        """Open, grab a few frames, judge them (black, frozen), release; while another program holds it (a call),
        only say so (``in_use``): never open it under a running call."""
        ...

    async def reset(self) -> None:
        """Release the camera and drop every frame held; fails while another process still holds it."""
        ...
