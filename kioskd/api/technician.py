"""The technician's tools: the self-test (doctor) and the simulated van's fault verbs. The verbs are the
simulation's own; this room only lists and forwards them, and waits briefly for what they set off."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kioskd import doctor
from kioskd.api.answers import Result, error_body
from kioskd.errors import DeviceError, TransitionRefused
from kioskd.station import Station

SIM_SETTLE_SECONDS = 5.0


class SimCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    args: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=8)


class DoctorCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    button_seconds: float = Field(0.0, ge=0, le=120)  # > 0: blink the LED and wait for a press that long


def _simulation(station: Station) -> Any:
    if station.devices.simulation is None:
        raise DeviceError("this station runs no simulated device", where="sim", key="api.bad_request")
    return station.devices.simulation


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.post("/doctor", summary="The technician's self-test: one verdict per device and system fact")
    async def doctor_run(command: DoctorCommand | None = None) -> dict[str, Any]:
        checks = await doctor.run(station.doctor_inputs(), command.button_seconds if command else 0.0)
        return {"ok": doctor.passed(checks), "checks": [check.to_json() for check in checks]}

    @api.get("/sim", summary="The simulated van's verbs")
    async def sim_verbs() -> dict[str, str]:
        return dict(_simulation(station).verbs())

    @api.post("/sim/{verb}", summary="Act on the simulated van (fault verbs)", response_model=Result)
    async def sim(
        verb: Annotated[str, Path(pattern=r"^[a-z][a-z-]{0,31}$")], command: SimCommand | None = None
    ) -> Result | JSONResponse:
        simulation = _simulation(station)
        args = command.args if command else []
        try:
            detail = await simulation.apply(verb, args)
        except KeyError:
            return JSONResponse(error_body(f"unknown verb {verb!r}", "sim", "sim.unknown_verb", verb=verb), 404)
        except ValueError as exc:
            raise TransitionRefused(str(exc), where=f"sim {verb}", key="api.bad_request") from None
        # what the change set off (a press opening a session, a hold ending the day) shows in the answer and in
        # the next status, unless it takes long (a print grace): then it goes on in the background
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(station.idle()), SIM_SETTLE_SECONDS)
        return Result(state=station.mode, detail=detail)

    return api
