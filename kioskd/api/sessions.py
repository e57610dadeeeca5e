"""The citizen's session seen from outside: the wipe's retry after a failure and the wipe receipts (no personal
data). The wipe itself is the station's; this room never touches a workspace."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from kioskd.errors import WipeError
from kioskd.station import Station


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.post("/wipe/retry", summary="Run a failed wipe again")
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

    @api.get("/receipts", summary="The latest wipe receipts (no personal data)")
    async def receipts(limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
        if station.store is None:
            return []
        return [dataclasses.asdict(r) for r in await station.store.receipts(limit)]

    return api
