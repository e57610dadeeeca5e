"""The host contract: the machine itself (powering off, holding off a shutdown while a wipe runs).

It has a backend but no state to show; when to power off is the power policy's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kioskd.hal.base import Device, Event


@dataclass(frozen=True)
class ShutdownPrepared(Event):
    """The machine is about to power off or reboot, whoever asked (logind's ``PrepareForShutdown(true)``: upsmon,
    UPower, an agent at the console): a session still open must be wiped now, while the delay inhibitor the
    station holds for the whole session keeps the shutdown waiting."""


class InhibitLock(Protocol):
    def release(self) -> None: ...


@runtime_checkable
class Host(Device, Protocol):
    """The machine itself (logind on a van): powering off, and holding off a shutdown while a wipe runs.

    MUST: ``power_off`` and ``inhibit``; a lock's ``release`` is idempotent."""

    async def power_off(self) -> None: ...

    async def inhibit(self, why: str) -> InhibitLock:
        """Delay shutdown/sleep until the lock is released (logind ``Inhibit``, mode ``delay``)."""
        ...
