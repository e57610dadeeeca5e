"""The idle rule: a session nobody works with is warned about, then wiped. Every sign of work (an API call, a
print job, a scan) starts the countdown again, and a scan in progress (a long feeder stack) is never idleness.
Plain rules on the injected clock; the wipe itself is the station's (``Outlet.request("idle_wipe")``)."""

from __future__ import annotations

import dataclasses

from kioskd.hal import Clock, TimerHandle
from kioskd.policies.base import Policy
from kioskd.profile import StationConfig


class IdlePolicy(Policy):
    def __init__(self, config: StationConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._timer: TimerHandle | None = None

    def touched(self) -> None:
        """Someone is working with the citizen: the idle countdown starts again."""
        outlet = self.outlet
        if outlet.session is None:
            return
        self._cancel()
        info = outlet.state.session
        if info is not None and info.idle_deadline is not None:
            outlet.show(session=dataclasses.replace(info, idle_deadline=None))
            outlet.clear_notice("idle")
        self._timer = self.clock.call_later(self.config.idle_timeout - self.config.idle_warning, self._warning)

    def session_closing(self) -> None:
        self._cancel()
        self.outlet.clear_notice("idle")

    def close(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _warning(self) -> None:
        outlet = self.outlet
        info = outlet.state.session
        if outlet.session is None or info is None:
            return
        warning = self.config.idle_warning
        outlet.show(session=dataclasses.replace(info, idle_deadline=self.clock.wall() + warning))
        outlet.notice("idle", "session.idle.warning", "warning", seconds=int(warning))
        self._timer = self.clock.call_later(warning, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self.outlet.clear_notice("idle")
        if self.outlet.busy():  # a long feeder stack is work with the citizen, not idleness
            self.outlet.touch()
            return
        self.outlet.request("idle_wipe")
