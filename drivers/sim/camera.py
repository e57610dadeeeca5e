"""Simulated camera: a health check that passes while it is plugged in; ``reset`` releases it between citizens.
Its verb: camera."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from drivers.sim.van import SimView, choice
from kioskd.hal import CameraChanged, CameraHealth, CameraState, DeviceKind, DriverContext, DriverOptions, StateEvent


class SimCamera(SimView):
    kind: ClassVar[DeviceKind] = "camera"
    options_model: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self._state = CameraState(True, "Caméra simulée", False)

    @property
    def state(self) -> CameraState:
        return self._state

    def changed(self) -> StateEvent:
        return CameraChanged(self._state)

    async def health(self) -> CameraHealth:
        if not self._state.present:
            return CameraHealth(ok=False, present=False, fault="camera.absent")
        return CameraHealth(ok=True, present=True, width=1280, height=720, frames=5, brightness=118.0)

    async def reset(self) -> None:
        self._state = replace(self._state, in_use=False)
        self.record("reset")
        self.publish()

    async def verb_camera(self, args: list[str]) -> str:
        """camera plug|unplug"""
        plug = choice(args, "camera", ("plug", "unplug")) == "plug"
        self._state = replace(self._state, present=plug, in_use=False)
        self.publish()
        return f"camera {args[0]}"
