"""Simulated camera; ``reset`` releases it between citizens."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from drivers.sim.van import SimVan
from kioskd.hal import CameraHealth, CameraState, DriverContext, DriverOptions


class SimCamera:
    options_model: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        self.van = SimVan.of(ctx)

    @property
    def state(self) -> CameraState:
        return self.van.camera

    async def start(self) -> None:
        self.van.start("camera")

    async def close(self) -> None:
        self.van.stop("camera")

    async def health(self) -> CameraHealth:
        if not self.van.camera.present:
            return CameraHealth(ok=False, present=False, fault="camera.absent")
        return CameraHealth(ok=True, present=True, width=1280, height=720, frames=5, brightness=118.0)

    async def reset(self) -> None:
        self.van.camera = replace(self.van.camera, in_use=False)
        self.van.record("camera", "reset")
        self.van.publish("camera")
