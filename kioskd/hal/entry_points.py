"""Where backends are found: the ``kioskd.drivers`` entry-point group (``<kind>.<driver>`` names a class).

It only finds and imports a backend class; building one is ``loader.build_backend``'s, and it reads no profile."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from kioskd.errors import DriverNotFound
from kioskd.hal.base import DriverKind

GROUP = "kioskd.drivers"


def available(kind: DriverKind) -> list[str]:
    return sorted(ep.name.split(".", 1)[1] for ep in entry_points(group=GROUP) if ep.name.startswith(f"{kind}."))


def table_of(kind: DriverKind) -> str:
    """The profile table a kind's backend is named in."""
    return kind if kind in ("host", "media") else f"devices.{kind}"


def load_backend(kind: DriverKind, driver: str, source: str) -> type[Any]:
    matches = entry_points(group=GROUP, name=f"{kind}.{driver}")
    if not matches:
        raise DriverNotFound(
            f"no backend {driver!r} for {kind}; installed: {', '.join(available(kind)) or 'none'}",
            where=f"{source}: {table_of(kind)}.driver",
            action="install the package that provides it or pick an installed backend",
        )
    ep = next(iter(matches))
    try:
        loaded: type[Any] = ep.load()
    except ImportError as exc:
        raise DriverNotFound(
            f"backend {driver!r} for {kind} cannot be imported: {exc}",
            where=f"{source}: {table_of(kind)}.driver",
            action="install the backend's libraries (see README)",
        ) from None
    return loaded
