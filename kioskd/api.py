"""The HTTP API: JSON commands and state, and a server-sent event stream of the station's snapshot.

Served twice by the daemon: on a unix socket (0660, group kiosk-agent) for ``kioskctl``, and on 127.0.0.1 for the
panel, where every request must carry the panel token. Errors are JSON with a catalogue message (fr/en)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kioskd import doctor, messages, panel
from kioskd.errors import DeviceError, KioskError, TransitionRefused, WipeError
from kioskd.hal import ScanMode, ScanSource
from kioskd.records import stats
from kioskd.station import Station, refusal_params
from kioskd.station.snapshot import StationChanged

if TYPE_CHECKING:
    from kioskd.fleet import FleetLink

KEEPALIVE_SECONDS = 15.0
SIM_SETTLE_SECONDS = 5.0
MAX_DOCUMENT = 50 * 1024 * 1024  # bytes: a scanned file of a few dozen pages; anything larger is refused


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


class SimCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    args: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=8)


class ScanCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: ScanSource = "flatbed"
    mode: ScanMode | None = None  # the profile's default
    multi: bool = False  # the whole feeder
    destination: str | None = Field(None, max_length=64)  # an upload destination of the profile


class DoctorCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    button_seconds: float = Field(0.0, ge=0, le=120)  # > 0: blink the LED and wait for a press that long


class PrivacyCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool | None = None  # None: toggle (the panel's and the button's one press)


class StopCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")  # None: left the stop


class Result(BaseModel):
    ok: bool = True
    state: str
    detail: str = ""


def error_body(exc: KioskError, mode: str) -> dict[str, Any]:
    params = refusal_params(exc, mode)
    key = exc.key or "api.bad_request"
    return {
        "error": {
            **messages.both(key, **({"detail": exc.what} | params)),
            "what": exc.what,
            "where": exc.where,
        }
    }


def create_app(
    station: Station, token: str | None = None, stopping: asyncio.Event | None = None, fleet: FleetLink | None = None
) -> FastAPI:
    """The API for ``station``; with ``token``, every request needs it (``Authorization: Bearer`` or the panel's
    cookie, see ``kioskd.panel``), except the panel's page itself."""
    app = FastAPI(
        title="kioskd",
        version="1",
        description="Local API of the van's station (state, commands, simulated van).",
    )
    stop = stopping or asyncio.Event()

    if token is not None:
        panel.protect(app, token)
    panel.add_routes(app, station)

    @app.exception_handler(TransitionRefused)
    async def refused(_: Request, exc: TransitionRefused) -> JSONResponse:
        return JSONResponse(error_body(exc, station.mode), status_code=409)

    @app.exception_handler(DeviceError)
    async def device_error(_: Request, exc: DeviceError) -> JSONResponse:
        return JSONResponse(error_body(exc, station.mode), status_code=503)

    @app.exception_handler(WipeError)
    async def wipe_error(_: Request, exc: WipeError) -> JSONResponse:
        return JSONResponse(error_body(exc, station.mode), status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the framework's own refusals (unreadable body, unknown path, wrong method) in the API's error shape
        detail = str(exc.detail)
        key = "api.not_found" if exc.status_code in (404, 405) else "api.bad_request"
        return JSONResponse(
            {"error": {**messages.both(key, detail=detail), "what": detail, "where": "request"}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg')}"
        return JSONResponse(
            {"error": {**messages.both("api.bad_request", detail=detail), "what": detail, "where": where}},
            status_code=400,
        )

    @app.get("/status", summary="The whole station at a glance")
    async def status() -> dict[str, Any]:
        return (await station.snapshot()).to_json(now=station.clock.wall())

    @app.post("/start", summary="Start the station (like a short press when off)")
    async def start() -> Result:
        await station.start()
        return Result(state=station.mode)

    @app.post("/next", summary="Next citizen: wipe the current session, open a new one")
    async def next_citizen() -> Result:
        await station.next_citizen()
        return Result(state=station.mode)

    @app.post("/end-of-day", summary="End of day: wipe and shut the station down")
    async def end_of_day() -> Result:
        await station.end_of_day()
        return Result(state=station.mode)

    @app.post("/wipe/retry", summary="Run a failed wipe again")
    async def wipe_retry() -> dict[str, Any]:
        outcome = await station.retry_wipe()
        if outcome is None:
            return {"ok": True, "state": station.mode, "detail": "nothing to wipe"}
        if not outcome.verified:
            failed = ", ".join(outcome.failed_handlers())
            raise WipeError(
                f"the wipe failed again ({failed})", where="wipe", key="wipe.failed", params={"handler": failed}
            )
        return {"ok": True, "state": station.mode, "detail": "wiped and verified"}

    @app.post("/print", summary="Print a PDF for the current citizen (body: the document)")
    async def print_document(request: Request) -> dict[str, Any]:
        document = await _body(request, MAX_DOCUMENT)
        if not document.startswith(b"%PDF-"):
            raise TransitionRefused("not a PDF document", where="print", key="api.bad_request")
        job = await station.print_document(document)
        return {"ok": True, "job": job, "state": station.mode}

    @app.post("/scan", summary="Scan for the current citizen into one PDF fitted to an upload destination")
    async def scan(command: ScanCommand) -> dict[str, Any]:
        return await station.scan(command.source, command.mode, command.multi, command.destination)

    @app.get("/scanning", summary="The profile's scan settings and upload destinations (the panel's picker)")
    async def scanning() -> dict[str, Any]:
        cfg = station.profile.scanning
        return {
            "resolution": cfg.resolution,
            "mode": cfg.mode,
            "default_destination": cfg.destination().name,
            "destinations": [{"name": d.name, "max_bytes": d.max_bytes} for d in cfg.destinations],
        }

    @app.get("/scans", summary="The current citizen's scans")
    async def scans() -> list[dict[str, Any]]:
        return await station.scans()

    @app.get("/jobs", summary="The current citizen's print jobs")
    async def jobs() -> list[dict[str, Any]]:
        if station.session is None:
            return []
        return [dataclasses.asdict(job) for job in await station.devices.printer.jobs(station.session.id)]

    @app.post("/doctor", summary="The technician's self-test: one verdict per device and system fact")
    async def doctor_run(command: DoctorCommand | None = None) -> dict[str, Any]:
        checks = await doctor.run(station.doctor_inputs(), command.button_seconds if command else 0.0)
        return {"ok": doctor.passed(checks), "checks": [check.to_json() for check in checks]}

    @app.post("/privacy", summary="Privacy curtain on the citizen screen (on, off, or toggle when on is null)")
    async def privacy(command: PrivacyCommand | None = None) -> dict[str, Any]:
        curtain = await station.set_privacy(command.on if command else None)
        return {"ok": True, "state": station.mode, "curtain": curtain}

    @app.post("/activity", summary="The agent is working with the citizen: restart the idle countdown")
    async def activity() -> Result:
        station.touch()
        return Result(state=station.mode)

    @app.get("/camera/health", summary="Open the camera, grab a few frames, judge them (black, frozen), release it")
    async def camera_health() -> dict[str, Any]:
        return dataclasses.asdict(await station.devices.camera.health())

    @app.get("/receipts", summary="The latest wipe receipts (no personal data)")
    async def receipts(limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
        if station.store is None:
            return []
        return [dataclasses.asdict(r) for r in await station.store.receipts(limit)]

    @app.get("/power/history", summary="Power samples of the last hours (for the panel's chart)")
    async def power_history(hours: Annotated[float, Query(gt=0, le=168)] = 12) -> list[dict[str, Any]]:
        if station.store is None:
            return []
        return await station.store.power_samples(station.clock.wall() - hours * 3600)

    @app.post("/stop", summary="Name the stop the van stands at (null: it left), for the signal atlas")
    async def stop_named(command: StopCommand) -> dict[str, Any]:
        connectivity = station.set_stop(command.name)
        return {"ok": True, "stop": connectivity.stop, "source": connectivity.stop_source}

    @app.get("/atlas", summary="Stops ranked by reachability and median signal over the last weeks")
    async def atlas(weeks: Annotated[float | None, Query(gt=0, le=52)] = None) -> list[dict[str, Any]]:
        if station.store is None:
            return []
        span = (weeks or station.profile.connectivity.atlas_weeks) * 7 * 24 * 3600
        return await station.store.atlas(station.clock.wall() - span)

    async def _month_visits(month: str | None) -> tuple[str, list[Any]]:
        if station.store is None:
            raise DeviceError("this station keeps no store", where="stats", key="api.bad_request")
        month = month or stats.month_of(station.clock.wall(), station.profile.activity.timezone)
        return month, await station.store.activity(month)

    @app.get("/stats", summary="The office's activity figures of a month (visits per stop, week, hour)")
    async def activity_stats(month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None) -> dict[str, Any]:
        month, visits = await _month_visits(month)
        return stats.summarize(month, visits)

    @app.get("/stats.csv", summary="One line per visit of a month, for the office's spreadsheet")
    async def activity_csv(
        month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None, lang: Literal["fr", "en"] = "fr"
    ) -> Response:
        month, visits = await _month_visits(month)
        headers = {"Content-Disposition": f'attachment; filename="kioskd-{station.state.vehicle}-{month}.csv"'}
        return Response(stats.to_csv(visits, lang), media_type="text/csv; charset=utf-8", headers=headers)

    @app.get("/stats/chart.png", summary="Visits per stop and per week of a month, as a chart")
    async def activity_chart(
        month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None, lang: Literal["fr", "en"] = "fr"
    ) -> Response:
        month, visits = await _month_visits(month)
        png = await asyncio.to_thread(stats.chart_png, stats.summarize(month, visits), lang)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/fleet", summary="The link to the office's broker (state, messages sent, waiting in the outbox)")
    async def fleet_link() -> dict[str, Any]:
        if fleet is None or station.store is None:
            return {"state": "disabled"}
        return {**fleet.describe(), "outbox": await station.store.outbox_size()}

    @app.get("/sim", summary="The simulated van's verbs")
    async def sim_verbs() -> dict[str, str]:
        return dict(_simulation(station).verbs())

    @app.post("/sim/{verb}", summary="Act on the simulated van (fault verbs)", response_model=Result)
    async def sim(
        verb: Annotated[str, Path(pattern=r"^[a-z][a-z-]{0,31}$")], command: SimCommand | None = None
    ) -> Result | JSONResponse:
        simulation = _simulation(station)
        args = command.args if command else []
        try:
            detail = await simulation.apply(verb, args)
        except KeyError:
            body = messages.both("sim.unknown_verb", verb=verb)
            return JSONResponse({"error": {**body, "what": f"unknown verb {verb!r}", "where": "sim"}}, 404)
        except ValueError as exc:
            raise TransitionRefused(str(exc), where=f"sim {verb}", key="api.bad_request") from None
        # what the change set off (a press opening a session, a hold ending the day) shows in the answer and in
        # the next status, unless it takes long (a print grace): then it goes on in the background
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(station.idle()), SIM_SETTLE_SECONDS)
        return Result(state=station.mode, detail=detail)

    @app.get("/events", summary="Server-sent events: the station's snapshot at each change")
    async def events(request: Request) -> StreamingResponse:
        queue, unsubscribe = station.bus.queue(StationChanged)

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse((await station.snapshot()).to_json(now=station.clock.wall()))
                while not stop.is_set():
                    getter = asyncio.ensure_future(queue.get())
                    stopper = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait(
                        {getter, stopper}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    getter.cancel()
                    stopper.cancel()
                    if getter in done:
                        event = getter.result()
                        assert isinstance(event, StationChanged)
                        yield _sse(event.state.to_json(now=station.clock.wall()))
                    elif not done:
                        yield ": keepalive\n\n"
            finally:
                unsubscribe()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return app


def _simulation(station: Station) -> Any:
    if station.devices.simulation is None:
        raise DeviceError("this station runs no simulated device", where="sim", key="api.bad_request")
    return station.devices.simulation


def _sse(payload: dict[str, Any]) -> str:
    return f"event: state\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"
