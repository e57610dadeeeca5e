"""The shapes the API answers in: a command's ``Result`` and the one error body every refusal carries (the routers'
errors, the framework's, the panel's guard). Shapes only: no route and no status code lives here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kioskd import messages
from kioskd.errors import KioskError
from kioskd.station import refusal_params


class Result(BaseModel):
    ok: bool = True
    state: str
    detail: str = ""


def error_body(what: str, where: str | None = None, key: str | None = None, **params: object) -> dict[str, Any]:
    """``{"error": {"key", "fr", "en", "what", "where"}}``: the catalogue message ``key`` (its ``detail`` parameter is
    ``what`` unless given), what failed and where. Every refusal names its key, the panel guard's too (its words are
    the same for anyone and tell nothing of the station); without one, only ``what``."""
    words = messages.both(key, **({"detail": what} | params)) if key is not None else {}
    return {"error": {**words, "what": what, **({"where": where} if where is not None else {})}}


def kiosk_error_body(exc: KioskError, mode: str) -> dict[str, Any]:
    """The body of one of kioskd's own errors, its message filled with the station's ``mode`` and its params."""
    return error_body(exc.what, exc.where, exc.key or "api.bad_request", **refusal_params(exc, mode))
