"""Finds and builds the backend a profile names for each device kind, through the ``kioskd.drivers`` entry points.

Like gpiozero's pin factories, the backend can also be forced from the environment (``KIOSKD_DRIVER_<KIND>=sim``),
so a technician can run a vehicle profile with one device simulated. Building a backend does no I/O: it only
validates its options; ``start()`` opens the device. It reads the profile's device tables, nothing else of it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kioskd.hal.base import DEVICE_KINDS, Clock, DriverKind, Event, ProfileError
from kioskd.hal.context import Devices, DriverContext, Simulation, contract_of
from kioskd.hal.entry_points import GROUP, available, load_backend, table_of

if TYPE_CHECKING:  # the profile imports the HAL's kinds; the loader only reads its device tables
    from kioskd.profile import Profile

__all__ = ["GROUP", "available", "build_backend", "build_devices", "load_backend"]


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
    section = profile.media if kind == "media" else profile.host if kind == "host" else profile.devices[kind]
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
        find_backend=load_backend,
    )
    backend = cls(ctx)
    if not isinstance(backend, contract_of(kind)):
        raise ProfileError(
            f"backend {driver!r} does not implement the {kind} contract",
            where=f"{profile.source}: {table_of(kind)}.driver",
        )
    return backend, ctx


def build_devices(profile: Profile, clock: Clock, emit: Callable[[Event], None], runtime_dir: Path) -> Devices:
    """One backend per kind, as the profile (or ``KIOSKD_DRIVER_<KIND>``) says; raises ``ProfileError``."""
    shared: dict[str, Any] = {}
    built: dict[str, Any] = {}
    kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host", "media")
    for kind in kinds:
        built[kind], _ = build_backend(profile, kind, clock, emit, runtime_dir, shared)
    simulation = next((obj for obj in shared.values() if isinstance(obj, Simulation)), None)
    return Devices(**built, simulation=simulation)
