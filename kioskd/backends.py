"""Finds and builds the backend a profile names for each device kind, through the ``kioskd.drivers`` entry points.

Like gpiozero's pin factories, the backend can also be forced from the environment (``KIOSKD_DRIVER_<KIND>=sim``),
so a technician can run a vehicle profile with one device simulated. Building a backend does no I/O: it only
validates its options; ``start()`` opens the device."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from kioskd.errors import DriverNotFound, ProfileError
from kioskd.hal import (
    CONTRACTS,
    DEVICE_KINDS,
    Audio,
    Button,
    Camera,
    Clock,
    DriverContext,
    DriverKind,
    Event,
    Host,
    Modem,
    PowerSource,
    Printer,
    Scanner,
    Simulation,
)
from kioskd.hal import Displays as DisplaysContract
from kioskd.profile import Profile

GROUP = "kioskd.drivers"


def available(kind: DriverKind) -> list[str]:
    return sorted(ep.name.split(".", 1)[1] for ep in entry_points(group=GROUP) if ep.name.startswith(f"{kind}."))


def load_backend(kind: DriverKind, driver: str, source: str) -> type[Any]:
    matches = entry_points(group=GROUP, name=f"{kind}.{driver}")
    if not matches:
        raise DriverNotFound(
            f"no backend {driver!r} for {kind}; installed: {', '.join(available(kind)) or 'none'}",
            where=f"{source}: {_table(kind)}.driver",
            action="install the package that provides it or pick an installed backend",
        )
    ep = next(iter(matches))
    try:
        loaded: type[Any] = ep.load()
    except ImportError as exc:
        raise DriverNotFound(
            f"backend {driver!r} for {kind} cannot be imported: {exc}",
            where=f"{source}: {_table(kind)}.driver",
            action="install the backend's libraries (see README)",
        ) from None
    return loaded


def _table(kind: DriverKind) -> str:
    return "host" if kind == "host" else f"devices.{kind}"


@dataclass
class Devices:
    """The eight backends of one station, typed by contract."""

    power: PowerSource
    modem: Modem
    displays: DisplaysContract
    scanner: Scanner
    printer: Printer
    button: Button
    audio: Audio
    camera: Camera
    host: Host
    simulation: Simulation | None = None

    def all(self) -> list[tuple[DriverKind, Any]]:
        kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host")
        return [(kind, getattr(self, kind)) for kind in kinds]


def build_backend(
    profile: Profile,
    kind: DriverKind,
    clock: Clock,
    emit: Callable[[Event], None],
    runtime_dir: Path,
    shared: dict[str, Any],
) -> tuple[Any, DriverContext]:
    """The backend the profile (or ``KIOSKD_DRIVER_<KIND>``) names for ``kind``, built (no I/O); raises
    ``ProfileError``. The context tells which options model the backend checked its section against."""
    section = profile.host if kind == "host" else profile.devices[kind]
    override = os.environ.get(f"KIOSKD_DRIVER_{kind.upper()}")
    driver = override or section.driver
    options = {} if override and override != section.driver else section.options()
    cls = load_backend(kind, driver, profile.source)
    ctx = DriverContext(
        kind=kind,
        driver=driver,
        options=options,
        clock=clock,
        emit=emit,
        runtime_dir=runtime_dir,
        shared=shared,
        source=profile.source,
    )
    backend = cls(ctx)
    contract = Host if kind == "host" else CONTRACTS[kind]
    if not isinstance(backend, contract):
        raise ProfileError(
            f"backend {driver!r} does not implement the {kind} contract",
            where=f"{profile.source}: {_table(kind)}.driver",
        )
    return backend, ctx


def build_devices(profile: Profile, clock: Clock, emit: Callable[[Event], None], runtime_dir: Path) -> Devices:
    """One backend per kind, as the profile (or ``KIOSKD_DRIVER_<KIND>``) says; raises ``ProfileError``."""
    shared: dict[str, Any] = {}
    built: dict[str, Any] = {}
    kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host")
    for kind in kinds:
        built[kind], _ = build_backend(profile, kind, clock, emit, runtime_dir, shared)
    simulation = next((obj for obj in shared.values() if isinstance(obj, Simulation)), None)
    return Devices(**built, simulation=simulation)
