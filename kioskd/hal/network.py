"""The uplinks contract: the van's ways to the Internet (modems, SIM slots, a wired or Wi-Fi link at a town hall)
as the connection manager (NetworkManager) holds them, in the profile's order of preference.

A modem backend that owns several uplinks offers it next to the ``Modem`` contract. It holds no rule: which uplink
to use, when to switch and when to recover is the connectivity policy's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

UplinkKind = Literal["gsm", "ethernet", "wifi"]


@dataclass(frozen=True)
class Uplink:
    """One uplink as the connection manager and the modem (for ``gsm``) see it; ``interface`` is the kernel
    interface its traffic leaves by while its connection is active (the probe binds to it)."""

    name: str
    kind: UplinkKind
    interface: str | None = None
    active: bool = False
    registered: bool = True  # gsm: on a network (home or roaming); other kinds: always
    operator: str | None = None
    signal: int | None = None
    technology: str = "none"  # as ModemState.technology
    cell: str | None = None  # gsm: "MCCMNC-LAC-CID" of the serving cell, when the modem tells
    sim_slot: int | None = None  # gsm on a dual-SIM modem: the slot of this uplink's SIM
    standby: bool = False  # its modem is on its other SIM slot: it carries nothing until ``prefer`` switches the slot


@runtime_checkable
class Uplinks(Protocol):
    """MUST: ``uplinks`` in the profile's order (the first is the preferred one); ``prefer(name)`` makes ``name``
    carry the van's traffic (lowest route metric; on a dual-SIM modem, its SIM slot first), ``reconnect_uplink``
    takes its connection down and up again through the connection manager, ``reset_uplink`` resets its modem; each
    raises ``DeviceError`` when it fails."""

    @property
    def uplinks(self) -> tuple[Uplink, ...]: ...

    async def prefer(self, name: str) -> None: ...

    async def reconnect_uplink(self, name: str) -> None: ...

    async def reset_uplink(self, name: str) -> None: ...
