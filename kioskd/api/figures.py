"""What the store remembers, read back: power history, the signal atlas, the office's activity figures (JSON, CSV,
chart) and the fleet link's state. Read-only: this room writes nothing to the store."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from kioskd.errors import DeviceError
from kioskd.records import stats
from kioskd.station import Station

if TYPE_CHECKING:
    from kioskd.fleet import FleetLink


def router(station: Station, fleet: FleetLink | None) -> APIRouter:
    api = APIRouter()

    @api.get("/power/history", summary="Power samples of the last hours (for the panel's chart)")
    async def power_history(hours: Annotated[float, Query(gt=0, le=168)] = 12) -> list[dict[str, Any]]:
        if station.store is None:
            return []
        return await station.store.power_samples(station.clock.wall() - hours * 3600)

    @api.get("/atlas", summary="Stops ranked by reachability and median signal over the last weeks")
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

    @api.get("/stats", summary="The office's activity figures of a month (visits per stop, week, hour)")
    async def activity_stats(month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None) -> dict[str, Any]:
        month, visits = await _month_visits(month)
        return stats.summarize(month, visits)

    @api.get("/stats.csv", summary="One line per visit of a month, for the office's spreadsheet")
    async def activity_csv(
        month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None, lang: Literal["fr", "en"] = "fr"
    ) -> Response:
        month, visits = await _month_visits(month)
        headers = {"Content-Disposition": f'attachment; filename="kioskd-{station.state.vehicle}-{month}.csv"'}
        return Response(stats.to_csv(visits, lang), media_type="text/csv; charset=utf-8", headers=headers)

    @api.get("/stats/chart.png", summary="Visits per stop and per week of a month, as a chart")
    async def activity_chart(
        month: Annotated[str | None, Query(pattern=stats.MONTH.pattern)] = None, lang: Literal["fr", "en"] = "fr"
    ) -> Response:
        month, visits = await _month_visits(month)
        png = await asyncio.to_thread(stats.chart_png, stats.summarize(month, visits), lang)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @api.get("/fleet", summary="The link to the office's broker (state, messages sent, waiting in the outbox)")
    async def fleet_link() -> dict[str, Any]:
        if fleet is None or station.store is None:
            return {"state": "disabled"}
        return {**fleet.describe(), "outbox": await station.store.outbox_size()}

    return api
