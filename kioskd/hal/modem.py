"""The modem contract: the LTE link's state, its events and the recoveries the connectivity policy asks for.

It holds no retry rule (when to reset or reconnect is the connectivity policy's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent
from kioskd.hal.network import Uplink

Registration = Literal["unknown", "idle", "searching", "home", "roaming", "denied"]
Technology = Literal["none", "gsm", "umts", "lte", "5gnr"]
SimStatus = Literal["unknown", "ready", "locked", "missing"]


@dataclass(frozen=True)
class ModemState:
    present: bool = False
    registration: Registration = "unknown"
    technology: Technology = "none"
    signal: int | None = None  # quality in %, as ModemManager's SignalQuality
    operator: str | None = None
    connected: bool = False  # a data bearer is up
    internet: bool | None = None  # the last reachability check: None until one ran
    detail: str = ""
    rsrp: float | None = None  # dBm, LTE or 5G (ModemManager's Signal interface), None when the modem cannot tell
    rsrq: float | None = None  # dB
    sinr: float | None = None  # dB (ModemManager calls it "snr")
    sim: SimStatus = "unknown"
    latitude: float | None = None  # the van's GPS fix from the modem (Location interface), when it has one
    longitude: float | None = None
    cell: str | None = None  # the serving cell "MCCMNC-LAC-CID" (3GPP location): names the stop without a GPS fix
    uplink: str | None = None  # the uplink carrying the traffic, with a multi-uplink backend (NetworkManager)
    sim_slot: int | None = None  # the SIM slot in use (from 1) on a modem with several, None with one
    uplinks: tuple[Uplink, ...] = ()  # every uplink in the profile's order, with such a backend


@dataclass(frozen=True)
class ModemChanged(StateEvent):
    device: ClassVar[DeviceKind] = "modem"
    state: ModemState


@dataclass(frozen=True)
class SignalChanged(Event):
    quality: int | None
    technology: Technology


@runtime_checkable
class Modem(Device, Protocol):
    """The LTE modem (ModemManager in a van).

    MUST: ``state`` (``present`` false while no modem is seen), ``ModemChanged`` on each change, ``SignalChanged``
    when the quality or technology moves; ``reset``, ``reconnect`` and ``check_internet``, which raise
    ``DeviceError`` (key ``modem.absent``) without a modem. MAY: leave ``rsrp``/``rsrq``/``sinr`` and the GPS fix
    ``None`` when the modem cannot tell."""

    @property
    def state(self) -> ModemState: ...

    async def reset(self) -> None:
        """Recover a hung modem (ModemManager ``Reset``, or a power cycle)."""
        ...

    async def reconnect(self) -> None:
        """Bring the data connection down and up again through its owner (NetworkManager in a van; kioskd never
        connects a bearer itself)."""
        ...

    async def check_internet(self) -> bool:
        """Whether the Internet is really reachable through the modem now; updates ``state.internet``."""
        ...


@runtime_checkable
class SimSlots(Protocol):
    """MAY, for a modem with several SIM slots: ``set_sim_slot(slot)`` makes it work on the SIM in ``slot`` (from 1;
    ``state.sim_slot`` says which is in use), raising ``DeviceError`` when it cannot."""

    async def set_sim_slot(self, slot: int) -> None: ...
