"""The SANE backend and the scan pipeline against SANE's real ``test`` backend: pages, ADF stacks, faults that keep
the pages before them, reopened handles, and one PDF per job in the scans folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from drivers.scanner.sane import SaneScanner
from kioskd.clock import ManualClock
from kioskd.hal import DeviceError, DeviceFault, ScanFinished, ScannerChanged, ScanRequest
from kioskd.policies.scanning_pipeline import scan_to_pdf
from tests.integration.sane_service import EventLog, read_status_at, sane_test_backend, scanner_context

pytestmark = pytest.mark.integration

# Small pages keep the suite quick; the pipeline's accuracy at 300 dpi is tested on its own.
FAST = {"resolution": 75, "mode": "gray"}


@pytest.fixture(scope="module")
def sane_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with sane_test_backend(tmp_path_factory.mktemp("sane")) as config:
        yield config


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
async def scanner(sane_config: Path, tmp_path: Path, events: EventLog) -> AsyncIterator[SaneScanner]:
    # No udev matching: the test backend is not a USB device; presence is SANE opening it. Its options live as long
    # as the process, so every open puts back the normal read status a previous test may have changed.
    options = {"test-picture": "Grid", "read-return-value": "Default"}
    ctx = scanner_context(tmp_path, events, device="test:0", udev_match={}, sane_options=options)
    device = SaneScanner(ctx)
    await device.start()
    try:
        yield device
    finally:
        device.before_page = None
        await device.close()


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def _handles(device: SaneScanner) -> list[Any]:
    """Records the SANE handle each page is read with (kept alive, so no two can share an identity)."""
    seen: list[Any] = []
    previous = device.before_page

    def hook(number: int, handle: Any) -> None:
        seen.append(handle)
        if previous is not None:
            previous(number, handle)

    device.before_page = hook
    return seen


async def test_start_opens_the_device_and_lists_both_sources(scanner: SaneScanner, events: EventLog) -> None:
    assert scanner.state.present and scanner.state.status == "idle"
    assert scanner.state.sources == ("flatbed", "adf")
    assert "frontend-tester" in scanner.state.name
    assert events.of(ScannerChanged)[-1].state == scanner.state


async def test_flatbed_page_comes_at_the_asked_resolution_and_mode(scanner: SaneScanner) -> None:
    colour = await scanner.scan(ScanRequest(source="flatbed", resolution=100, mode="color"))
    grey = await scanner.scan(ScanRequest(source="flatbed", resolution=50, mode="gray"))
    assert len(colour.pages) == 1 and colour.fault is None
    page = colour.pages[0]
    # A4 at 100 dpi is 827 × 1169 pixels (the test backend truncates the width).
    assert page.pixels.shape == (1169, 826, 3) and page.dpi == 100 and page.mode == "color"
    assert grey.pages[0].pixels.shape == (584, 413) and grey.pages[0].mode == "gray"


async def test_flatbed_ignores_multi_and_gives_one_page(scanner: SaneScanner) -> None:
    result = await scanner.scan(ScanRequest(source="flatbed", multi=True, **FAST))
    assert len(result.pages) == 1 and result.fault is None


async def test_single_adf_request_takes_one_sheet(scanner: SaneScanner) -> None:
    result = await scanner.scan(ScanRequest(source="adf", multi=False, **FAST))
    assert len(result.pages) == 1 and result.fault is None


async def test_adf_stack_is_read_to_its_end_without_a_fault(scanner: SaneScanner, events: EventLog) -> None:
    # The test backend's feeder holds 10 sheets per opened handle.
    result = await scanner.scan(ScanRequest(source="adf", multi=True, **FAST))
    assert len(result.pages) == 10 and result.fault is None
    assert events.of(ScanFinished)[-1].pages == 10
    assert not events.of(DeviceFault)
    assert scanner.state.status == "idle"


async def test_three_page_adf_job_yields_one_three_page_pdf(
    scanner: SaneScanner, events: EventLog, tmp_path: Path
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    clock = ManualClock()
    # The feeder runs out at the fourth sheet: the normal end of a three-sheet stack.
    scanner.before_page = read_status_at(4, "SANE_STATUS_NO_DOCS")
    request = ScanRequest(source="adf", multi=True, resolution=150, mode="color")
    outcome = await scan_to_pdf(scanner, request, dest=scans, budget=1_000_000, clock=clock)
    assert outcome.pages == 3 and outcome.fault is None and outcome.message == "scan.done"
    stamp = datetime.fromtimestamp(clock.wall()).strftime("%Y%m%d-%H%M%S")
    assert outcome.path == scans / f"scan-{stamp}.pdf"
    assert listing(scans) == [outcome.path.name]
    assert outcome.bytes == outcome.path.stat().st_size <= 1_000_000
    with pikepdf.open(outcome.path) as pdf:
        assert len(pdf.pages) == 3
    assert events.of(ScanFinished)[-1].pages == 3


async def test_jam_at_page_four_keeps_first_three_pages(scanner: SaneScanner, events: EventLog, tmp_path: Path) -> None:
    scanner.before_page = read_status_at(4, "SANE_STATUS_JAMMED")
    handles = _handles(scanner)
    outcome = await scan_to_pdf(
        scanner, ScanRequest(source="adf", multi=True, **FAST), dest=tmp_path, budget=1_000_000, clock=ManualClock()
    )
    assert outcome.pages == 3 and outcome.fault == "scanner.jammed"
    assert outcome.message == "scan.kept.jammed" and outcome.params["page"] == 4
    assert outcome.path is not None
    with pikepdf.open(outcome.path) as pdf:
        assert len(pdf.pages) == 3
    assert DeviceFault("scanner", "scanner.jammed") in events.of(DeviceFault)
    assert scanner.state.status == "fault" and scanner.state.fault == "jammed" and scanner.state.present

    # The next job reads with a fresh handle and clears the fault.
    result = await scanner.scan(ScanRequest(source="flatbed", **FAST))
    assert len(result.pages) == 1 and result.fault is None
    assert handles[-1] is not handles[0]
    assert DeviceFault("scanner", "scanner.jammed", cleared=True) in events.of(DeviceFault)
    assert scanner.state.status == "idle" and scanner.state.fault is None


@pytest.mark.parametrize(
    ("status", "fault"),
    [
        ("SANE_STATUS_NO_DOCS", "no-docs"),
        ("SANE_STATUS_COVER_OPEN", "cover-open"),
        ("SANE_STATUS_DEVICE_BUSY", "busy"),
        ("SANE_STATUS_IO_ERROR", "io-error"),
        ("SANE_STATUS_NO_MEM", "io-error"),
    ],
)
async def test_fault_on_the_first_sheet_gives_its_key_and_no_page(
    scanner: SaneScanner, events: EventLog, tmp_path: Path, status: str, fault: str
) -> None:
    scanner.before_page = read_status_at(1, status)
    outcome = await scan_to_pdf(
        scanner, ScanRequest(source="adf", multi=True, **FAST), dest=tmp_path, budget=1_000_000, clock=ManualClock()
    )
    assert outcome.pages == 0 and outcome.path is None
    assert outcome.fault == outcome.message == f"scanner.{fault}"
    assert events.of(DeviceFault) == [DeviceFault("scanner", f"scanner.{fault}")]
    assert scanner.state.fault == fault
    assert listing(tmp_path) == []


async def test_end_of_stack_is_not_a_fault_and_keeps_the_handle(scanner: SaneScanner, events: EventLog) -> None:
    handles = _handles(scanner)
    first = await scanner.scan(ScanRequest(source="adf", multi=True, **FAST))
    second = await scanner.scan(ScanRequest(source="adf", multi=False, **FAST))
    assert len(first.pages) == 10 and first.fault is None
    assert len(second.pages) == 1 and second.fault is None
    assert all(handle is handles[0] for handle in handles)
    assert not events.of(DeviceFault)


async def test_missing_device_reads_as_unplugged(sane_config: Path, tmp_path: Path, events: EventLog) -> None:
    device = SaneScanner(scanner_context(tmp_path, events, device="test:9", udev_match={}))
    await device.start()
    try:
        assert not device.state.present and device.state.status == "absent"
        result = await device.scan(ScanRequest(**FAST))
        assert result.pages == () and result.fault == "unplugged"
        assert events.of(DeviceFault)[-1] == DeviceFault("scanner", "scanner.unplugged")
    finally:
        await device.close()


async def test_device_may_be_named_by_its_backend_alone(sane_config: Path, tmp_path: Path, events: EventLog) -> None:
    # A USB scanner's full SANE name changes with its bus address at each plug: "test" finds "test:0".
    device = SaneScanner(scanner_context(tmp_path, events, device="test", udev_match={}))
    await device.start()
    try:
        assert device.state.present and device.state.status == "idle"
        assert len((await device.scan(ScanRequest(**FAST))).pages) == 1
    finally:
        await device.close()


async def test_a_source_the_scanner_lacks_is_refused(scanner: SaneScanner, tmp_path: Path, events: EventLog) -> None:
    # A feeder name this backend does not have: as if the profile named a flatbed-only scanner's feeder.
    device = SaneScanner(scanner_context(tmp_path, events, device="test:1", udev_match={}, sources={"adf": "Tray"}))
    await device.start()
    try:
        assert device.state.sources == ("flatbed",)
        with pytest.raises(DeviceError, match="no adf source"):
            await device.scan(ScanRequest(source="adf", **FAST))
        assert device.state.status == "idle"
    finally:
        await device.close()


async def test_scan_before_start_is_a_device_error(sane_config: Path, tmp_path: Path, events: EventLog) -> None:
    device = SaneScanner(scanner_context(tmp_path, events, device="test:0", udev_match={}))
    with pytest.raises(DeviceError):
        await device.scan(ScanRequest())


async def test_a_network_scanner_is_present_by_sanes_own_list_though_udev_never_marks_it(
    sane_config: Path, tmp_path: Path, events: EventLog
) -> None:
    # sane-airscan's eSCL devices (over the network or ipp-usb) never get udev's libsane_matched. The test backend
    # stands for one here, named among the network backends, with the default udev matching left on.
    for name in ("test:0", None):
        device = SaneScanner(scanner_context(tmp_path, events, device=name, network_backends=["test"]))
        await device.start()
        try:
            assert device.state.present and device.state.status == "idle", device.state
            result = await device.scan(ScanRequest(source="flatbed", **FAST))
            assert len(result.pages) == 1 and result.fault is None
        finally:
            await device.close()


async def test_duplex_is_offered_only_where_the_scanner_has_it(scanner: SaneScanner) -> None:
    # SANE's test backend has a flatbed and a feeder, no duplex: asking for it is refused, nothing is read.
    assert "duplex" not in scanner.state.sources
    with pytest.raises(DeviceError, match="no duplex source"):
        await scanner.scan(ScanRequest(source="duplex", **FAST))
    assert scanner.state.status == "idle"
