"""The station's commands: its state at a glance, start, next citizen, end of day, the curtain, the agent's activity
and the stop's name. Each answers what the station did; the station decides, this room only translates HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kioskd.api.answers import Result
from kioskd.station import Station


class PrivacyCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool | None = None  # None: toggle (the panel's and the button's one press)


class SwitchCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool | None = None  # None: toggle


class StopCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")  # None: left the stop


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.get("/status", summary="The whole station at a glance")
    async def status() -> dict[str, Any]:
        return (await station.snapshot()).to_json(now=station.clock.wall())

    @api.post("/start", summary="Start the station (like a short press when off)")
    async def start() -> Result:
        await station.start()
        return Result(state=station.mode)

    @api.post("/next", summary="Next citizen: wipe the current session, open a new one")
    async def next_citizen() -> Result:
        await station.next_citizen()
        return Result(state=station.mode)

    @api.post("/end-of-day", summary="End of day: wipe and shut the station down")
    async def end_of_day() -> Result:
        await station.end_of_day()
        return Result(state=station.mode)

    @api.post("/privacy", summary="Privacy curtain on the citizen screen (on, off, or toggle when on is null)")
    async def privacy(command: PrivacyCommand | None = None) -> dict[str, Any]:
        curtain = await station.set_privacy(command.on if command else None)
        return {"ok": True, "state": station.mode, "curtain": curtain}

    @api.post("/handover", summary="Main au citoyen: the citizen's input devices on, off, or toggled (on null)")
    async def handover(command: SwitchCommand | None = None) -> dict[str, Any]:
        state = await station.set_handover(command.on if command else None)
        return {"ok": True, "state": station.mode, "handover": dataclasses.asdict(state)}

    @api.post(
        "/confidential",
        summary="Saisie confidentielle: the citizen types while the agent's screen is curtained and the agent's "
        "keyboard and mouse are off (on, off, or toggled when on is null)",
    )
    async def confidential(command: SwitchCommand | None = None) -> dict[str, Any]:
        state = await station.set_confidential(command.on if command else None)
        return {"ok": True, "state": station.mode, "handover": dataclasses.asdict(state)}

    @api.post("/activity", summary="The agent is working with the citizen: restart the idle countdown")
    async def activity() -> Result:
        station.touch()
        return Result(state=station.mode)

    @api.post("/stop", summary="Name the stop the van stands at (null: it left), for the signal atlas")
    async def stop_named(command: StopCommand) -> dict[str, Any]:
        connectivity = station.set_stop(command.name)
        return {"ok": True, "stop": connectivity.stop, "source": connectivity.stop_source}

    return api
