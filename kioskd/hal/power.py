"""The power contract: shore, battery and ignition, their state and their events.

VE.Direct, NUT, UPower, sysfs and GPIO backends each report a subset; ``None`` in the state means "this backend
cannot tell". No rule about what to do on low power lives here (that is the power policy's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent


@dataclass(frozen=True)
class PowerState:
    """What the power backend(s) know. ``None`` means "this backend cannot tell" (not "false")."""

    available: bool = False  # at least one good reading and not stale
    shore: bool | None = None
    ignition: bool | None = None
    soc: float | None = None  # state of charge, %
    time_to_go: float | None = None  # seconds of autonomy at the present load, as the backend reports it
    voltage: float | None = None  # V
    current: float | None = None  # A, positive while charging
    power: float | None = None  # W, positive while charging
    charging: bool | None = None
    alarm: str | None = None  # backend alarm, e.g. "low-voltage"
    detail: str = ""  # technician's detail, e.g. the charger state "bulk"
    # The backend itself says the battery is about to go, whatever the charge figure (NUT's ``FSD``, or ``OB LB``
    # as upsmon's is_ups_critical reads it): end the session, wipe and power off, as at critical_soc.
    critical: bool = False
    # The parts of the source that stopped talking (a combined source names its silent parts), for the notice.
    silent: tuple[str, ...] = ()


@dataclass(frozen=True)
class PowerChanged(StateEvent):
    device: ClassVar[DeviceKind] = "power"
    state: PowerState


@dataclass(frozen=True)
class ShoreChanged(Event):
    connected: bool


@dataclass(frozen=True)
class IgnitionChanged(Event):
    on: bool


@runtime_checkable
class PowerSource(Device, Protocol):
    """Shore, battery and ignition. VE.Direct, NUT, UPower, sysfs and GPIO backends report subsets of it.

    MUST: ``state`` (``available`` false until a good reading, and again when the readings go stale); emit
    ``PowerChanged`` on every change of the state. MAY: emit ``ShoreChanged``/``IgnitionChanged`` on a flip of a
    plug it sees itself; report a lost monitor through ``DeviceFault`` (``FaultReporter``)."""

    @property
    def state(self) -> PowerState: ...
