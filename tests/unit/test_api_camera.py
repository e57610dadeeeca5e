"""``GET /camera/health`` on the simulated van, through the API application itself (no socket)."""

from __future__ import annotations

import httpx

from kioskd.api import create_app
from tests.conftest import Rig


async def test_camera_health_answers_with_the_check_and_says_when_the_camera_is_gone(rig: Rig) -> None:
    transport = httpx.ASGITransport(app=create_app(rig.station))
    async with httpx.AsyncClient(transport=transport, base_url="http://kioskd") as client:
        answer = await client.get("/camera/health")
        assert answer.status_code == 200
        body = answer.json()
        assert body["ok"] is True and body["fault"] is None
        assert (body["width"], body["height"]) == (1280, 720)
        await rig.sim("camera", "unplug")
        body = (await client.get("/camera/health")).json()
        assert body == {**body, "ok": False, "present": False, "fault": "camera.absent"}
        assert "/camera/health" in (await client.get("/openapi.json")).json()["paths"]
