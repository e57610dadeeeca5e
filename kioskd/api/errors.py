"""The handlers that turn kioskd's errors and the framework's refusals into the API's one error body
(``answers.error_body``). The status follows the error's kind (refused 409, device or wipe 503, the framework's as it
said); this room raises nothing of its own."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kioskd.api.answers import error_body, kiosk_error_body
from kioskd.errors import DeviceError, KioskError, StorageError, TransitionRefused, WipeError
from kioskd.station import Station

STATUS: dict[type[KioskError], int] = {TransitionRefused: 409, DeviceError: 503, WipeError: 503, StorageError: 503}


def install(app: FastAPI, station: Station) -> None:
    """Answer kioskd's errors (by ``STATUS``) and the framework's refusals (unreadable body, unknown path, wrong
    method, invalid field) in the API's error body."""

    async def kiosk_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KioskError)
        # the framework picks the handler by the error's class or its nearest parent: so does its status
        status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
        return JSONResponse(kiosk_error_body(exc, station.mode), status_code=status)

    for kind in STATUS:
        app.add_exception_handler(kind, kiosk_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        key = "api.not_found" if exc.status_code in (404, 405) else "api.bad_request"
        return JSONResponse(
            error_body(detail, "request", key), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(error_body(f"{where}: {first.get('msg')}", where, "api.bad_request"), status_code=400)
