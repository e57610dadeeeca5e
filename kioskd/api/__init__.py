"""The HTTP API: JSON commands and state, and a server-sent event stream of the station's snapshot.

Served twice by the daemon: on a unix socket (0660, group kiosk-agent) for ``kioskctl``, and on 127.0.0.1 for the
panel, where every request must carry the panel token. One router per area; errors are one JSON body (``errors``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import FastAPI

from kioskd.api import commands, devices, errors, events, figures, media, panel, sessions, technician, update
from kioskd.station import Station

if TYPE_CHECKING:
    from kioskd.fleet import FleetLink

__all__ = ["create_app"]


def create_app(
    station: Station, token: str | None = None, stopping: asyncio.Event | None = None, fleet: FleetLink | None = None
) -> FastAPI:
    """The API for ``station``; with ``token``, every request needs it (``Authorization: Bearer`` or the panel's
    cookie, see ``kioskd.api.panel``), except the panel's page itself."""
    app = FastAPI(
        title="kioskd",
        version="1",
        description="Local API of the van's station (state, commands, simulated van).",
    )
    if token is not None:
        panel.protect(app, token)
    errors.install(app, station)
    for router in (
        panel.router(station),
        commands.router(station),
        sessions.router(station),
        devices.router(station),
        figures.router(station, fleet),
        technician.router(station),
        update.router(station),
        media.router(station),
        events.router(station, stopping or asyncio.Event()),
    ):
        app.include_router(router)
    return app
