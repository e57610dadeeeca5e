"""The panel's server side on its own (no daemon): which host names, origins and credentials the guard lets
through, and the scan thumbnails read straight out of kioskd's PDFs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import img2pdf
import pytest
from fastapi import FastAPI
from PIL import Image

from kioskd import messages
from kioskd.api.panel import COOKIE, first_page_thumbnail, protect

TOKEN = "t" * 32


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    protect(app, TOKEN)

    @app.get("/status")
    async def status() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/start")
    async def start() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/")
    async def page() -> dict[str, bool]:
        return {"page": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:
        yield c


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost", "LOCALHOST:1"])
async def test_local_host_names_pass(client: httpx.AsyncClient, host: str) -> None:
    assert (await client.get("/status", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"})).status_code == 200


# Each one a browser or a rebinding attacker could send, and a loose parser takes for a local name.
MALFORMED_HOSTS = [
    "[::1]evil.example",  # what follows the brackets was ignored
    "[::1]:8765evil",
    "[::1]x:8765",
    "localhost:99999",  # ports out of range
    "localhost:65536",
    "localhost:0",
    "localhost:-1",
    "localhost:+80",
    "localhost:08765",  # leading zero: another spelling of a port
    "localhost:",
    "localhost:80:80",
    "user@localhost",  # userinfo
    "localhost@evil.example",
    "evil.example@127.0.0.1:8765",
    "localhost:8765/evil",  # trailing junk
    "localhost:8765?x",
    "localhost#x",
    "localhost ",
    " localhost",
    "localhost\t",
    "127.0.0.1.",
    "127.0.0.1:8765.",
    "::1",  # IPv6 without brackets
    "::1:8765",
    "[0:0:0:0:0:0:0:1]:8765",  # another spelling of ::1
    "[::ffff:127.0.0.1]",
    "[::1",
    "::1]",
    "127.1",
    "2130706433",
    "lócalhost",  # not ASCII
    "localhost\u00a0",
]


@pytest.mark.parametrize(
    "host", ["evil.example:8765", "127.0.0.1.evil.example", "[::2]:8765", "", "localhost.:80", *MALFORMED_HOSTS]
)
async def test_other_host_names_are_refused_even_with_the_token(client: httpx.AsyncClient, host: str) -> None:
    answer = await client.get("/status", headers={"Host": host.encode("latin-1"), "Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 421
    assert answer.json()["error"]["key"] == "api.refused.host"


async def test_every_refusal_of_the_guard_says_why_in_french_and_english(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refusals = {
        421: await client.get("/status", headers={**auth, "Host": "evil.example"}),
        401: await client.get("/status"),
        403: await client.post("/start", headers={**auth, "Origin": "http://evil.example"}),
    }
    for status, answer in refusals.items():
        assert answer.status_code == status
        error = answer.json()["error"]
        assert error["key"] in messages.CATALOGUE, status
        assert error["fr"] == messages.text(error["key"], "fr") and error["en"] == messages.text(error["key"], "en")
        assert error["fr"] != error["en"] and error["what"]
    client.cookies.set(COOKIE, TOKEN)
    no_origin = (await client.post("/start")).json()["error"]
    assert no_origin["key"] == "api.refused.no_origin" and no_origin["fr"] and no_origin["en"]


async def test_the_page_needs_no_token_but_the_data_does(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 200  # a link to it
    assert (await client.get("/status")).status_code == 401
    assert (await client.get("/status", headers={"Authorization": "Bearer " + "u" * 32})).status_code == 401


async def test_an_origin_other_than_the_panels_own_is_refused(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post("/start", headers={**auth, "Origin": "http://127.0.0.1:8765"})).status_code == 200
    assert (await client.post("/start", headers={**auth, "Origin": "http://127.0.0.1:9999"})).status_code == 403
    assert (await client.post("/start", headers={**auth, "Origin": "null"})).status_code == 403
    assert (await client.get("/status", headers={**auth, "Sec-Fetch-Site": "same-site"})).status_code == 403


async def test_with_the_cookie_a_command_must_show_its_origin(client: httpx.AsyncClient) -> None:
    client.cookies.set(COOKIE, TOKEN)
    assert (await client.get("/status")).status_code == 200
    assert (await client.post("/start")).status_code == 403  # a cookie alone rides on any request: not enough to act
    assert (await client.post("/start", headers={"Origin": "http://127.0.0.1:8765"})).status_code == 200


def page_jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (1240, 1754)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=80)
    return out.getvalue()


def test_the_thumbnail_is_page_one_small_and_jpeg(tmp_path: Path) -> None:
    pdf = tmp_path / "scan-20261123-101500.pdf"
    pdf.write_bytes(img2pdf.convert([page_jpeg((200, 30, 30)), page_jpeg((30, 30, 200))]))
    data = first_page_thumbnail(pdf)
    assert data is not None and data[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(data)) as thumb:
        assert max(thumb.size) <= 240 and thumb.size[1] > thumb.size[0]  # portrait, like the page
        r, _g, b = thumb.convert("RGB").getpixel((thumb.size[0] // 2, thumb.size[1] // 2))
    assert r > 150 and b < 80  # the red first page, not the blue second one


def test_no_thumbnail_for_a_missing_or_foreign_file(tmp_path: Path) -> None:
    assert first_page_thumbnail(tmp_path / "scan-20261123-101500.pdf") is None
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4 no image here")
    assert first_page_thumbnail(other) is None
