"""Simulated speakers and microphone; ``reset`` brings back the van's defaults between citizens. Its verb: audio
(unplug, plug, or a stream a citizen's call opens)."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimView, choice
from kioskd.hal import AudioChanged, AudioState, DeviceKind, DriverContext, DriverOptions, StateEvent


class SimAudioOptions(DriverOptions):
    volume: int = Field(60, ge=0, le=100)


class SimAudio(SimView):
    kind: ClassVar[DeviceKind] = "audio"
    options_model: ClassVar[type[SimAudioOptions]] = SimAudioOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.opts = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = AudioState(True, "Haut-parleurs", "Micro", self.opts.volume, False, True, 0)

    @property
    def state(self) -> AudioState:
        return self._state

    def changed(self) -> StateEvent:
        return AudioChanged(self._state)

    async def session_start(self) -> None:
        self._state = replace(self._state, volume=self.opts.volume, muted=False, mic_muted=False)
        self.record("session_start")
        self.publish()

    async def reset(self) -> None:
        self._state = replace(self._state, volume=self.opts.volume, muted=False, mic_muted=True, streams=0)
        self.record("reset")
        self.publish()

    async def verb_audio(self, args: list[str]) -> str:
        """audio plug|unplug|stream (a citizen's call opens a stream)"""
        what = choice(args, "audio", ("unplug", "plug", "stream"))
        if what == "stream":
            self._state = replace(self._state, streams=self._state.streams + 1, mic_muted=False)
        else:
            self._state = replace(self._state, present=what == "plug")
        self.publish()
        return f"audio {what}"
