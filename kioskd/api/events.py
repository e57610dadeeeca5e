"""The server-sent event stream: the station's snapshot at once, then at each change, with a keepalive comment when
nothing changes. It ends when the daemon stops or the client goes; it only reads the station, never commands it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kioskd.station import Station
from kioskd.station.snapshot import StationChanged

KEEPALIVE_SECONDS = 15.0


def sse(payload: dict[str, Any]) -> str:
    return f"event: state\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def router(station: Station, stop: asyncio.Event) -> APIRouter:
    api = APIRouter()

    @api.get("/events", summary="Server-sent events: the station's snapshot at each change")
    async def events(request: Request) -> StreamingResponse:
        queue, unsubscribe = station.bus.queue(StationChanged)

        async def stream() -> AsyncIterator[str]:
            # One waiter on the queue and one on the stop, each ended here whatever way the stream ends: the client
            # that goes cancels this generator inside its await, and a waiter left pending is collected with the
            # queue ("Task was destroyed but it is pending!") or waits for the daemon's stop (one per client gone).
            stopper = asyncio.ensure_future(stop.wait())
            getter: asyncio.Future[Any] | None = None
            try:
                yield sse((await station.snapshot()).to_json(now=station.clock.wall()))
                while not stop.is_set():
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, stopper}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter in done:
                        event, getter = getter.result(), None
                        assert isinstance(event, StationChanged)
                        yield sse(event.state.to_json(now=station.clock.wall()))
                    elif not done:
                        yield ": keepalive\n\n"  # the same getter waits on: no change is lost between two
            finally:
                stopper.cancel()
                if getter is not None:
                    getter.cancel()
                unsubscribe()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return api
