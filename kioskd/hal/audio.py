"""The audio contract: speakers and microphone, their state, and the reset between citizens.

Volumes and when to reset are the profile's and the wipe's; the backend only carries them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, StateEvent


@dataclass(frozen=True)
class AudioState:
    present: bool = False
    sink: str | None = None
    source: str | None = None
    volume: int | None = None  # %
    muted: bool = False
    mic_muted: bool = True
    streams: int = 0  # playback + record streams open now


@dataclass(frozen=True)
class AudioChanged(StateEvent):
    device: ClassVar[DeviceKind] = "audio"
    state: AudioState


@runtime_checkable
class Audio(Device, Protocol):
    """Speakers and microphone (PulseAudio).

    MUST: ``state`` and ``AudioChanged``; ``session_start`` and ``reset``; a missing output or an unreachable
    sound server is a ``DeviceFault`` (told once, through ``FaultReporter``), never an exception out of the
    backend. MAY: have no microphone (``source`` ``None``, the fault ``audio.no-microphone``)."""

    @property
    def state(self) -> AudioState: ...

    async def session_start(self) -> None:
        """A citizen arrives: output unmuted at the profile's volume, microphone open (video calls)."""
        ...

    async def reset(self) -> None:
        """Back to the van's defaults between citizens: streams closed, default volume, microphone muted."""
        ...
