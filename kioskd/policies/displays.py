"""The displays' rules: the screens come on and mirror when the station starts or the van arrives, go off when it
travels or the day ends; the privacy curtain (the citizen screen shows a neutral page while the agent types their
own credentials) is refused while the screens are off. It drives any ``kioskd.hal.Displays``; no driver here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kioskd.errors import TransitionRefused
from kioskd.hal import Displays
from kioskd.policies.base import Policy

if TYPE_CHECKING:
    from kioskd.station.snapshot import Mode


class DisplaysPolicy(Policy):
    def __init__(self, displays: Displays) -> None:
        self.displays = displays

    async def moving(self, target: Mode) -> None:
        if target in ("starting", "ready"):
            await self.displays.set_power(True)
            await self.displays.set_mirror(True)
        elif target in ("travelling", "off"):
            await self.displays.set_power(False)

    async def set_privacy(self, on: bool | None = None) -> bool:
        """The curtain on, off, or toggled (``None``); returns its new state. It answers at once, also during a
        wipe: it is not a command that waits for the station's lock."""
        if self.outlet.state.mode in ("off", "travelling", "shutting_down"):
            raise TransitionRefused("the screens are off", where="displays", key="refused.privacy.off")
        target = (not self.outlet.state.displays.curtain) if on is None else on
        await self.displays.set_curtain(target)
        await self.outlet.snapshot()
        return target
