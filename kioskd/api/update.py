"""The A/B updates' verbs: what the update policy says (``GET /update``) and ``POST /update/install`` with a bundle
file on the van, or a URL and its sha256 (downloaded first). The policy decides (the lock, the checks); this room
only translates HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kioskd.errors import UpdateRefused
from kioskd.policies.update import UpdatePolicy
from kioskd.station import Station


class InstallCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f]+$")  # a bundle's path, or its URL
    sha256: str = Field(default="", max_length=64, pattern=r"^[0-9a-fA-F]*$")  # a URL's bundle's hash


def _policy(station: Station) -> UpdatePolicy:
    for policy in station.policies:
        if isinstance(policy, UpdatePolicy):
            return policy
    raise UpdateRefused("this station runs without updates", where="update", key="update.unavailable")


def router(station: Station) -> APIRouter:
    api = APIRouter()

    @api.get("/update", summary="The A/B updates: running slot and version, an install's phase and progress")
    async def update_state() -> dict[str, Any]:
        return _policy(station).to_json()

    @api.post("/update/install", summary="Install an update bundle into the inactive slot (waits for no citizen)")
    async def update_install(command: InstallCommand) -> dict[str, Any]:
        policy = _policy(station)
        await policy.install(command.source, command.sha256)
        return {"ok": True, **policy.to_json()}

    return api
