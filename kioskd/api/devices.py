"""The current citizen's devices through the station: print, scan (and its settings), their jobs and scans, and the
camera's health. Bodies are bounded here (a document never buffered past its limit); the devices are the station's."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from kioskd.errors import TransitionRefused
from kioskd.hal import ScanMode, ScanSource
from kioskd.station import Station

MAX_DOCUMENT = 50 * 1024 * 1024  # bytes: a scanned file of a few dozen pages; anything larger is refused


class ScanCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: ScanSource = "flatbed"
    mode: ScanMode | None = None  # the profile's default
    multi: bool = False  # the whole feeder
    destination: str | None = Field(None, max_length=64)  # an upload destination of the profile


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past ``limit`` (never buffered whole first)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TransitionRefused(
                f"document larger than {limit // 1_048_576} MiB", where="print", key="api.bad_request"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.post("/print", summary="Print a PDF for the current citizen (body: the document)")
    async def print_document(request: Request) -> dict[str, Any]:
        document = await _body(request, MAX_DOCUMENT)
        if not document.startswith(b"%PDF-"):
            raise TransitionRefused("not a PDF document", where="print", key="api.bad_request")
        job = await station.print_document(document)
        return {"ok": True, "job": job, "state": station.mode}

    @api.post("/scan", summary="Scan for the current citizen into one PDF fitted to an upload destination")
    async def scan(command: ScanCommand) -> dict[str, Any]:
        return await station.scan(command.source, command.mode, command.multi, command.destination)

    @api.get("/scanning", summary="The profile's scan settings and upload destinations (the panel's picker)")
    async def scanning() -> dict[str, Any]:
        cfg = station.profile.scanning
        return {
            "resolution": cfg.resolution,
            "mode": cfg.mode,
            "default_destination": cfg.destination().name,
            "destinations": [{"name": d.name, "max_bytes": d.max_bytes} for d in cfg.destinations],
        }

    @api.get("/scans", summary="The current citizen's scans")
    async def scans() -> list[dict[str, Any]]:
        return await station.scans()

    @api.get("/jobs", summary="The current citizen's print jobs")
    async def jobs() -> list[dict[str, Any]]:
        if station.session is None:
            return []
        return [dataclasses.asdict(job) for job in await station.devices.printer.jobs(station.session.id)]

    @api.get("/camera/health", summary="Open the camera, grab a few frames, judge them (black, frozen), release it")
    async def camera_health() -> dict[str, Any]:
        return dataclasses.asdict(await station.devices.camera.health())

    return api
