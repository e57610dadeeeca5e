"""The SANE backend and the scan pipeline against SANE's real ``test`` backend: pages, ADF stacks, faults that keep
the pages before them, reopened handles, and one PDF per job in the scans folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

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
    # No udev matching: the test backend is not a USB device; presence is SANE opening it.
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


def _handles(device: SaneScanner) -> list[int]:
    """Records the number of the SANE handle each page is read with (each open counts one more)."""
    seen: list[int] = []
    previous = device.before_page

    def hook(number: int, opened: int) -> dict[str, object] | None:
        seen.append(opened)
        return previous(number, opened) if previous is not None else None

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
    assert handles[-1] != handles[0]
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


async def test_end_of_stack_is_not_a_fault_and_each_job_reads_with_a_fresh_libsane(
    scanner: SaneScanner, events: EventLog
) -> None:
    handles = _handles(scanner)
    first = await scanner.scan(ScanRequest(source="adf", multi=True, **FAST))
    processes = sane_processes()
    second = await scanner.scan(ScanRequest(source="adf", multi=False, **FAST))
    assert len(first.pages) == 10 and first.fault is None
    assert len(second.pages) == 1 and second.fault is None
    # The stack's ten sheets and the empty feeder's answer with one handle, the next job with the next one, in a
    # process of its own.
    assert handles == [handles[0]] * 11 + [handles[0] + 1]
    assert len(processes) == 1 and not processes & sane_processes()
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


def sane_processes() -> set[int]:
    """The PIDs of this test process's children that run libsane (drivers/scanner/sane_child.py)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else 0
            if parent != os.getpid():
                continue
            if b"drivers.scanner.sane_child" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # it ended while being read
    return found


async def test_faults_in_a_row_each_end_with_their_key_and_leave_no_libsane_behind(
    scanner: SaneScanner, events: EventLog
) -> None:
    # libsane cancels its reader thread asynchronously: about one fault in twenty, that thread dies holding
    # malloc's or the loader's lock and sane_cancel (or the process's exit) hangs for good. In the daemon's own
    # process this froze the scanner and then the station (CI's run stopped at this very fault, 90 minutes later).
    # Each failed job now ends its libsane process, killed past the deadline when it hangs.
    faults = [
        ("SANE_STATUS_JAMMED", "jammed"),
        ("SANE_STATUS_DEVICE_BUSY", "busy"),
        ("SANE_STATUS_IO_ERROR", "io-error"),
    ]
    rounds = [faults[number % len(faults)] for number in range(40)]
    for round_, (status, fault) in enumerate(rounds):
        scanner.before_page = read_status_at(1, status)
        result = await scanner.scan(ScanRequest(source="adf", multi=True, **FAST))
        assert result.pages == () and result.fault == fault, (round_, result.fault)
        assert len(sane_processes()) == 1  # the fresh one, open for the next job
    scanner.before_page = None
    result = await scanner.scan(ScanRequest(source="flatbed", **FAST))
    assert len(result.pages) == 1 and result.fault is None
    assert scanner.state.status == "idle" and scanner.state.fault is None
    assert [e.fault for e in events.of(DeviceFault) if not e.cleared] == [f"scanner.{fault}" for _, fault in rounds]


async def test_a_libsane_that_stops_answering_is_killed_and_the_next_job_scans(
    sane_config: Path, tmp_path: Path, events: EventLog
) -> None:
    # A page that never ends: the test backend hands one byte per read and waits 200 ms after each buffer (an A4
    # page at 600 dpi, 100 MB, would take hours). Past the driver's deadline its libsane process is killed, the job
    # fails as a scanner that does not answer, and the next job opens a fresh one.
    options = {"read-return-value": "Default"}
    ctx = scanner_context(tmp_path, events, device="test:0", udev_match={}, sane_options=options, page_timeout=2)
    device = SaneScanner(ctx)
    await device.start()
    try:
        stuck = sane_processes()
        assert len(stuck) == 1

        def crawl(number: int, opened: int) -> dict[str, object] | None:
            if opened > 1:
                return None
            return {"read-limit": True, "read-limit-size": 1, "read-delay": True, "read-delay-duration": 200000}

        device.before_page = crawl
        result = await device.scan(ScanRequest(source="flatbed", resolution=600, mode="color"))
        assert result.pages == () and result.fault == "io-error"
        assert events.of(DeviceFault)[-1] == DeviceFault("scanner", "scanner.io-error")
        assert not stuck & sane_processes(), "the libsane that stopped answering is still running"
        again = await device.scan(ScanRequest(source="flatbed", **FAST))
        assert len(again.pages) == 1 and again.fault is None
        assert device.state.status == "idle" and device.state.fault is None
    finally:
        await device.close()
    assert not sane_processes()
