"""No input devices of the citizen's own (a van where the citizen only watches): the default when a profile has
no ``[devices.inputs]``. Hand-over has nothing to enable; the wipe has nothing to restore."""

from __future__ import annotations

from typing import ClassVar

from kioskd.hal import DriverContext, DriverOptions, InputSide, InputsState, Output


class NoInputs:
    options_model: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, ctx: DriverContext) -> None:
        ctx.parse_options(self.options_model)
        self._state = InputsState(detail="no citizen input devices in the profile")

    @property
    def state(self) -> InputsState:
        return self._state

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_enabled(self, side: InputSide, on: bool) -> None:
        return None

    async def map_citizen(self, output: Output) -> None:
        return None

    async def restore(self) -> list[str]:
        return []
