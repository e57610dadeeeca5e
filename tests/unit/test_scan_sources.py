"""Scan sources as scanners name them: duplex where the device offers it (SANE names of real backends, the
simulated van's feeder reading front then back), and which SANE devices udev cannot vouch for (eSCL, saned)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drivers.scanner.sane import over_network, source_name
from drivers.sim.scanner import synthetic_page
from kioskd.hal import ScanRequest
from tests.conftest import Rig

# The ``source`` option's choices as real backends list them (SANE backend sources and sane-airscan).
AIRSCAN = ["Flatbed", "ADF", "ADF Duplex"]
FUJITSU = ["ADF Front", "ADF Back", "ADF Duplex"]
HPAIO = ["Flatbed", "ADF", "Duplex"]
EPSON2 = ["Flatbed", "Automatic Document Feeder"]
DUPLEX_FIRST = ["ADF Duplex", "ADF Front", "Flatbed"]


@pytest.mark.parametrize(
    ("choices", "flatbed", "adf", "duplex"),
    [
        (AIRSCAN, "Flatbed", "ADF", "ADF Duplex"),
        (FUJITSU, None, "ADF Front", "ADF Duplex"),
        (HPAIO, "Flatbed", "ADF", "Duplex"),
        (EPSON2, "Flatbed", "Automatic Document Feeder", None),
        (DUPLEX_FIRST, "Flatbed", "ADF Front", "ADF Duplex"),
    ],
)
def test_each_source_maps_to_the_backends_own_name_and_the_feeder_is_never_the_duplex_one(
    choices: list[str], flatbed: str | None, adf: str | None, duplex: str | None
) -> None:
    assert source_name(choices, "flatbed") == flatbed
    assert source_name(choices, "adf") == adf
    assert source_name(choices, "duplex") == duplex


def test_a_configured_source_name_wins_over_the_guess() -> None:
    assert source_name(["Flatbed", "ADF Front/Back"], "duplex", "ADF Front/Back") == "ADF Front/Back"
    assert source_name(["Flatbed", "ADF"], "duplex", "Recto-verso") is None


@pytest.mark.parametrize(
    ("name", "network"),
    [
        ("airscan:e0:Canon MF743C", True),
        ("escl:https://192.168.1.20:443", True),
        ("net:localhost:fujitsu:libusb:001:004", True),
        ("genesys:libusb:001:007", False),
        ("test:0", False),
    ],
)
def test_only_network_backends_bypass_udev(name: str, network: bool) -> None:
    assert over_network(name, ["airscan", "escl", "net"]) is network


async def _scan(rig: Rig, request: ScanRequest) -> tuple[list[np.ndarray], str | None]:
    task = asyncio.ensure_future(rig.devices.scanner.scan(request))
    while not task.done():
        await rig.clock.advance(1.0)
    result = task.result()
    return [page.pixels for page in result.pages], result.fault


async def test_the_simulated_scanner_offers_duplex_and_reads_front_then_back(rig: Rig) -> None:
    assert "duplex" in rig.devices.scanner.state.sources
    await rig.sim("scanner", "load", "3")
    request = ScanRequest(source="duplex", resolution=50, mode="gray", multi=True)
    pages, fault = await _scan(rig, request)
    # Three sheets, two sides each, in the order they come out: 1 front, 1 back, 2 front …
    assert fault is None and len(pages) == 6
    for number, pixels in enumerate(pages, start=1):
        assert np.array_equal(pixels, synthetic_page(request, number).pixels)
    assert not np.array_equal(pages[0], pages[1])


async def test_one_duplex_sheet_is_two_pages_and_takes_one_sheet(rig: Rig) -> None:
    await rig.sim("scanner", "load", "2")
    pages, fault = await _scan(rig, ScanRequest(source="duplex", resolution=50, mode="gray"))
    assert fault is None and len(pages) == 2
    pages, fault = await _scan(rig, ScanRequest(source="adf", resolution=50, mode="gray", multi=True))
    assert fault is None and len(pages) == 1


async def test_a_duplex_job_makes_one_pdf_with_both_sides_of_every_sheet(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.sim("scanner", "load", "2")
    job = asyncio.ensure_future(rig.station.scan("duplex", "gray", True, "impots"))
    while not job.done():
        await rig.clock.advance(1.0)
        await asyncio.sleep(0.002)
    result = job.result()
    assert result["ok"] and result["pages"] == 4 and result["fault"] is None, result
