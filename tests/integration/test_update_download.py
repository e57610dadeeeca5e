"""The office's update by URL and sha256, against a real HTTP server on loopback that cuts the connection in the
middle of the body: the download resumes with a ``Range`` request (or starts again where a server has no ranges,
or after a power off from the ``.part`` file), is checked against its hash, and then goes the way of a file bundle:
the real RAUC service checks its signature and writes slot B once no citizen is there. The whole order, from the
office's MQTT command (a private mosquitto) to the "ready" message back, runs once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kioskd.clock import RealClock
from kioskd.errors import UpdateRefused
from kioskd.fleet import FleetLink
from kioskd.update import bootloader
from kioskd.update.download import Download
from tests.integration.bundle_server import BundleServer, bundle_server
from tests.integration.mosquitto_service import Broker, Office
from tests.integration.power_services import wait_until
from tests.integration.rauc_service import RaucVan, rauc_van, sha256
from tests.integration.test_fleet_mqtt import fleet_config
from tests.unit.test_update_policy import make_van

pytestmark = pytest.mark.integration
MiB = 1 << 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BundleServer]:
    folder = tmp_path / "office"
    folder.mkdir()
    with bundle_server(folder) as running:
        yield running


def published(server: BundleServer, name: str, size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    (server.folder / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def download(server: BundleServer, name: str, digest: str, folder: Path, **options: float) -> Download:
    return Download(server.url(name), digest, folder, RealClock(), retry_min=options.pop("retry_min", 0.01),
                    **options)  # type: ignore[arg-type]  # fmt: skip


async def test_a_download_cut_twice_resumes_with_ranges_and_matches_its_hash(
    server: BundleServer, tmp_path: Path
) -> None:
    data, digest = published(server, "v2.raucb", 3 * MiB + 123)
    server.cuts = [MiB, MiB // 2]
    fetch = download(server, "v2.raucb", digest, tmp_path / "downloads")
    got = await fetch.fetch()
    assert got == tmp_path / "downloads" / f"{digest}.raucb" and got.read_bytes() == data
    assert server.seen == ["", f"bytes={MiB}-", f"bytes={MiB + MiB // 2}-"]
    assert fetch.resumed == 2 and not fetch.part.exists()


async def test_a_server_without_ranges_sends_it_again_from_the_start(server: BundleServer, tmp_path: Path) -> None:
    server.ranges = False
    data, digest = published(server, "v2.raucb", 2 * MiB)
    server.cuts = [MiB + 7]
    got = await download(server, "v2.raucb", digest, tmp_path / "downloads").fetch()
    assert got.read_bytes() == data  # not the first MiB twice: the 200 answer started the file again
    assert server.seen == ["", f"bytes={MiB + 7}-"]


async def test_a_download_cut_by_a_power_off_resumes_from_its_part_file_at_the_next_start(
    server: BundleServer, tmp_path: Path
) -> None:
    data, digest = published(server, "v2.raucb", 2 * MiB)
    server.cuts = [MiB]
    first = download(server, "v2.raucb", digest, tmp_path / "downloads", retry_min=3600.0)
    running = asyncio.create_task(first.fetch())
    await wait_until(lambda: first.received == MiB and len(server.seen) == 1, "the cut at 1 MiB")
    await asyncio.sleep(0.2)  # the client saw the cut and waits to retry
    running.cancel()  # the van powered off
    with pytest.raises(asyncio.CancelledError):
        await running
    assert first.part.stat().st_size == MiB
    again = download(server, "v2.raucb", digest, tmp_path / "downloads")
    assert (await again.fetch()).read_bytes() == data
    assert server.seen[-1] == f"bytes={MiB}-" and again.resumed == 1


async def test_a_download_that_does_not_match_its_hash_is_refused_and_removed(
    server: BundleServer, tmp_path: Path
) -> None:
    published(server, "v2.raucb", MiB)
    fetch = download(server, "v2.raucb", "0" * 64, tmp_path / "downloads")
    with pytest.raises(UpdateRefused) as refused:
        await fetch.fetch()
    assert refused.value.key == "update.refused.hash"
    assert list((tmp_path / "downloads").iterdir()) == []


async def test_a_bundle_the_server_does_not_have_is_refused_without_retrying(
    server: BundleServer, tmp_path: Path
) -> None:
    fetch = download(server, "v9.raucb", "0" * 64, tmp_path / "downloads")
    with pytest.raises(UpdateRefused) as refused:
        await fetch.fetch()
    assert refused.value.key == "update.refused.download" and "404" in refused.value.what
    assert len(server.seen) == 1


async def test_a_link_down_for_good_ends_the_download_after_its_tries(tmp_path: Path) -> None:
    fetch = Download("http://127.0.0.1:9/v2.raucb", "0" * 64, tmp_path / "downloads", RealClock(),
                     retry_min=0.01, tries=3)  # fmt: skip
    with pytest.raises(UpdateRefused) as refused:
        await fetch.fetch()
    assert refused.value.key == "update.refused.download" and "3 times" in refused.value.what


# --------------------------------------------------------------------------------------------------- the whole order
@pytest.fixture
def van(tmp_path: Path) -> Iterator[RaucVan]:
    with rauc_van(tmp_path / "rauc") as running:
        yield running


async def test_the_office_orders_an_update_by_url_and_the_van_writes_it_after_a_cut_and_the_citizen(
    tmp_path: Path, van: RaucVan, server: BundleServer, broker: Broker
) -> None:
    bundle = van.bundle("2.0-url")
    (server.folder / "v2.raucb").write_bytes(bundle.read_bytes())
    digest = sha256(bundle)
    server.cuts = [bundle.stat().st_size // 2]
    (tmp_path / "van").mkdir()
    station = await make_van(tmp_path / "van", fleet=True, rauc=van.client(), clock=RealClock())
    downloads = station.policy.config.downloads
    link = FleetLink(fleet_config(broker, tmp_path), station.station, station.store, RealClock(),
                     update=station.policy.order)  # fmt: skip
    office = Office(broker, ["kioskd/#"], client_id="office-updates")
    try:
        await link.start()
        await wait_until(lambda: link.state == "up", "the fleet link up", within=15)
        await station.station.start()
        await station.station.next_citizen()  # a citizen is there when the order comes
        base = link.base
        order = {"command": "update", "request": "u1", "url": server.url("v2.raucb"), "sha256": digest.upper()}
        office.client.publish(f"{base}/cmd", json.dumps({**order, "sha256": "abc", "request": "u0"}), qos=1)
        await wait_until(lambda: len(office.of(lambda m: m.topic == f"{base}/reply")) == 1, "the refusal")
        office.client.publish(f"{base}/cmd", json.dumps(order), qos=1)
        await wait_until(lambda: station.policy.state.phase == "waiting", "downloaded and checked", within=60)
        replies = {r["request"]: r for r in map(json.loads, (m.payload for m in office.of(
            lambda m: m.topic == f"{base}/reply")))}  # fmt: skip
        assert replies["u0"]["ok"] is False and replies["u0"]["key"] == "update.refused.hash_missing"
        assert replies["u1"]["ok"] is True and replies["u1"]["update"]["phase"] == "downloading"
        assert server.seen[0] == "" and server.seen[1].startswith("bytes=")  # cut halfway, resumed
        assert station.policy.state.target == "2.0-url"  # RAUC's service read the downloaded bundle's manifest
        assert bootloader.primary(van.esp) == "a"  # the citizen is still there: nothing written
        await station.station.end_of_day()
        await wait_until(lambda: station.policy.state.phase not in ("waiting", "installing"), "written", within=60)
        assert station.policy.state.phase == "ready", station.policy.state
        assert bootloader.primary(van.esp) == "b"
        await wait_until(lambda: not list(downloads.glob("*.raucb")), "the bundle removed once written")
        await wait_until(lambda: bool(office.of(lambda m: m.topic == f"{base}/update")), "the office told")
        told = json.loads(office.of(lambda m: m.topic == f"{base}/update")[0].payload)
        assert told["data"]["event"] == "ready" and told["data"]["version"] == "2.0-url"
        from_van = [m.payload.decode() for m in office.messages if not m.topic.endswith("/cmd")]
        assert "127.0.0.1" not in json.dumps(from_van)  # the order's URL (it may carry a token) is not repeated
    finally:
        office.close()
        await link.close()
        await station.station.close()
