"""Simulated speakers and microphone; ``reset`` brings back the van's defaults between citizens."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from drivers.sim.van import SimVan
from kioskd.hal import AudioState, DriverContext, DriverOptions


class SimAudioOptions(DriverOptions):
    volume: int = Field(60, ge=0, le=100)


class SimAudio:
    options_model: ClassVar[type[SimAudioOptions]] = SimAudioOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.opts = ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)
        self.van.audio = replace(self.van.audio, volume=self.opts.volume)

    @property
    def state(self) -> AudioState:
        return self.van.audio

    async def start(self) -> None:
        self.van.start("audio")

    async def close(self) -> None:
        self.van.stop("audio")

    async def session_start(self) -> None:
        self.van.audio = replace(self.van.audio, volume=self.opts.volume, muted=False, mic_muted=False)
        self.van.record("audio", "session_start")
        self.van.publish("audio")

    async def reset(self) -> None:
        self.van.audio = replace(self.van.audio, volume=self.opts.volume, muted=False, mic_muted=True, streams=0)
        self.van.record("audio", "reset")
        self.van.publish("audio")
