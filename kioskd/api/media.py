"""The citizen's USB stick: copy the session's scans onto it, eject it. The media policy decides; this room only
translates HTTP, and answers with counts and kioskd's own folder name, never a name found on the stick."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kioskd.station import Station


class ExportCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # scans by the names kioskd gave them (``GET /scans``); empty or absent: all of them
    files: list[str] = Field(default_factory=list, max_length=500)
    all: bool = False


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.post("/media/export", summary="Copy the session's scans (chosen, or all) to a new folder on the stick")
    async def export(command: ExportCommand | None = None) -> dict[str, Any]:
        names = None if command is None or command.all or not command.files else command.files
        return await station.media_export(names)

    @api.post("/media/eject", summary="Eject the citizen's stick (unmount it cleanly)")
    async def eject() -> dict[str, Any]:
        return await station.media_eject()

    return api
