"""The agent panel's server side: its static files (``static/``), the token guard of the 127.0.0.1 port, and the scan
thumbnails.

The token travels in the URL's fragment (never sent to a server, never in a log) and is exchanged once for an
HttpOnly, SameSite=Strict cookie; requests from another origin or for another host name (DNS rebinding) are refused."""

from __future__ import annotations

import asyncio
import hmac
import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image

from kioskd import messages
from kioskd.api.answers import error_body
from kioskd.session.workspace import read_regular
from kioskd.station import Station

PANEL_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "kioskd_panel"
# A Host header is one of these names, in any case, then at most a port (1-65535, no leading zero) and nothing else:
# no userinfo, no trailing dot or junk, no IPv6 without brackets, no other spelling of ::1, no byte outside ASCII.
LOCAL_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::(?P<port>[1-9][0-9]{0,4}))?", re.ASCII | re.IGNORECASE)
# What the browser may fetch without the token: the page, its script and style, and its words (no station data).
PUBLIC_PATHS = frozenset({"/", "/panel/messages", "/favicon.ico"})
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
# The panel's own words, and the catalogue entries it shows as they are (printer reasons, scanner faults).
MESSAGE_PREFIXES = ("panel.", "label.", "word.", "printer.", "scanner.", "uplink.")
SAFE_METHODS = frozenset({"GET", "HEAD"})
THUMBNAIL_PX = 240
SCAN_NAME = r"^scan-[0-9]{8}-[0-9]{6}(-[0-9]+)?\.pdf$"  # the names kioskd.scanning gives; nothing else is served
SECURITY_HEADERS = {
    # everything comes from this origin; no frame may embed the panel (clickjacking of "Citoyen suivant")
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def is_local_host(host_header: str) -> bool:
    """Whether ``host_header`` names this machine's loopback, exactly (the DNS-rebinding guard): a name resolved by
    an attacker's DNS to 127.0.0.1 arrives with the attacker's name in it."""
    found = LOCAL_HOST.fullmatch(host_header)
    return found is not None and (found["port"] is None or int(found["port"]) <= 65535)


def _refuse(status: int, what: str, key: str) -> JSONResponse:
    # no Access-Control-* header ever: a browser on another origin cannot read this answer either; the words are the
    # catalogue's, the same for everyone (nothing about the station)
    return JSONResponse(error_body(what, "panel", key), status_code=status)


def protect(app: FastAPI, token: str) -> None:
    """Every request to ``app`` must name a local host, come from the panel's own origin (or from no browser), and
    carry the token (``Authorization: Bearer`` or the panel's cookie), except the page itself and its words."""
    expected = token.encode()

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        hosts = request.headers.getlist("host")
        host = hosts[0] if len(hosts) == 1 else ""  # two Host headers: which one a proxy saw is anyone's guess
        if not is_local_host(host):
            return _refuse(421, "this API answers for 127.0.0.1 and localhost only", "api.refused.host")
        path = request.url.path
        if request.method in SAFE_METHODS and (path in PUBLIC_PATHS or path.startswith("/panel/static/")):
            # the page holds no data: a link to it from anywhere may open it (it then asks for the token)
            return _with_security_headers(await call_next(request))
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return _refuse(403, "cross-origin request refused", "api.refused.origin")
        # another port of 127.0.0.1 is "same-site" and gets SameSite cookies: only the panel itself or a typed URL
        if request.headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
            return _refuse(403, "request from another site refused", "api.refused.origin")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        cookie = request.cookies.get(COOKIE, "")
        if bearer:
            if not hmac.compare_digest(bearer.encode(), expected):
                return _refuse(401, "missing or wrong panel token", "api.refused.token")
        elif cookie and hmac.compare_digest(cookie.encode(), expected):
            # a cookie rides along on any request the browser makes: a command must also prove its origin
            if request.method not in SAFE_METHODS and origin is None:
                return _refuse(403, "a command needs the panel's Origin header", "api.refused.no_origin")
        else:
            return _refuse(401, "missing or wrong panel token", "api.refused.token")
        return _with_security_headers(await call_next(request))


def _with_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def router(station: Station) -> APIRouter:
    """The panel's page, static files, words, cookie exchange and scan thumbnails."""
    app = APIRouter()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return _static("index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # none: the browser asks anyway, and a 401 in its console would mislead

    @app.get("/panel/static/{name}", include_in_schema=False)
    async def static(name: Annotated[str, PathParam(pattern=r"^[a-z]+\.(js|css|html)$")]) -> FileResponse:
        return _static(name)

    @app.get("/panel/messages", summary="The panel's words, French and English (from the message catalogue)")
    async def panel_messages() -> dict[str, dict[str, str]]:
        return {
            key: {"fr": message.fr, "en": message.en}
            for key, message in messages.CATALOGUE.items()
            if key.startswith(MESSAGE_PREFIXES)
        }

    @app.post("/panel/login", status_code=204, summary="Exchange the panel token for the panel's cookie")
    async def login(request: Request) -> Response:
        # the guard has checked the bearer token; the cookie carries it for EventSource and <img>, which cannot
        # send an Authorization header. A session cookie: it goes when the browser closes.
        response = Response(status_code=204)
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/scans/{name}/thumbnail", summary="Page 1 of one of the current citizen's scans, as a small JPEG")
    async def thumbnail(name: Annotated[str, PathParam(pattern=SCAN_NAME)]) -> Response:
        session = station.session
        # read through the workspace: a regular file only, never through a link, never blocking on a FIFO, bounded
        pdf = await asyncio.to_thread(session.workspace.read_scan, name) if session is not None else None
        data = await asyncio.to_thread(first_page_thumbnail, pdf) if pdf is not None else None
        if data is None:
            return JSONResponse(
                error_body("no such scan in this session", "scans", "api.scan_not_found"), status_code=404
            )
        # a citizen's document: never in the browser's cache, which outlives the session
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return app


def _static(name: str) -> FileResponse:
    path = PANEL_DIR / name
    if not path.is_file():
        return FileResponse(PANEL_DIR / "index.html", status_code=404)
    media = STATIC_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


JPEG_START = re.compile(rb"/DCTDecode.{0,400}?stream\r?\n", re.DOTALL)


def first_page_thumbnail(pdf: Path | bytes, size: int = THUMBNAIL_PX) -> bytes | None:
    """Page 1 of a scan kioskd wrote (a file, or its bytes read by ``Workspace.read_scan``), as a small JPEG; None
    when there is no such regular file (links, FIFOs and files larger than any scan are refused) or no page in it.

    kioskd's scans are made by img2pdf, which embeds each page's JPEG as it is (a DCTDecode stream, page order):
    the first one is page 1, read straight out of the file without a PDF renderer."""
    data = pdf if isinstance(pdf, bytes) else read_regular(pdf)
    if data is None:
        return None
    found = JPEG_START.search(data)
    if found is None:
        return None
    try:
        with Image.open(io.BytesIO(data[found.end() :])) as image:
            image.draft("RGB", (size, size))  # JPEG's own downscaling while decoding: a fraction of the work
            small = image.convert("RGB")
            small.thumbnail((size, size))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    small.save(out, "JPEG", quality=70)
    return out.getvalue()
