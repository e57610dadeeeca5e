"""The CUPS printer backend against a real private cupsd and ippeveprinter: printing, the printer's faults, a CUPS
server that goes away, a van whose CUPS has no queue yet, a printer that prints no PDF, a printer that stalls
(ipp-usb), the session app's own prints, and the purge at the wipe that must leave nothing of a citizen in CUPS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.printer.cups import FAULT_REASONS, CupsPrinter
from kioskd.clock import RealClock
from kioskd.hal import DeviceError, DeviceFault, DriverContext, Event, JobState, JobStateChanged, PrinterChanged
from kioskd.messages import CATALOGUE
from kioskd.profile import SIM_PROFILE
from tests.integration.cups_service import CupsService, one_page_pdf, running_cups
from tests.integration.daemon_process import start_daemon
from tests.integration.stalling_proxy import StallingProxy

pytestmark = pytest.mark.integration

WAIT = 30.0  # an upper bound for anything to happen, never a speed requirement
PWG_RASTER = b"RaS2"  # how a PWG raster stream starts (PWG 5102.4): what CUPS's filters make of a PDF


class Recorder:
    """The events a backend emits (from its worker thread or the loop), gathered on the test's loop."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()

    def emit(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._add, event)

    def _add(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(self, match: Callable[[Event], bool], *, since: int = 0, within: float = WAIT) -> Event:
        """The first event from ``since`` on that ``match``es; fails with what came instead."""
        try:
            async with asyncio.timeout(within):
                while True:
                    for event in self.events[since:]:
                        if match(event):
                            return event
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            seen = "\n  ".join(repr(e) for e in self.events[since:])
            raise AssertionError(f"no matching event within {within} s; seen:\n  {seen}") from None


def job_is(job_id: int, state: JobState) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, JobStateChanged) and e.job.id == job_id and e.job.state == state


def fault(key: str, *, cleared: bool = False) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, DeviceFault) and e.kind == "printer" and e.fault == key and e.cleared == cleared


def printer_is(status: str, *, reason: str | None = None, present: bool | None = None) -> Callable[[Event], bool]:
    def match(e: Event) -> bool:
        return (
            isinstance(e, PrinterChanged)
            and e.state.status == status
            and (reason is None or reason in e.state.reasons)
            and (present is None or e.state.present == present)
        )

    return match


def job_states(recorder: Recorder, job_id: int) -> list[str]:
    return [e.job.state for e in recorder.events if isinstance(e, JobStateChanged) and e.job.id == job_id]


def cups_files_containing(service: CupsService, needle: bytes) -> list[Path]:
    """Every file of the private CUPS tree (config, spool, cache, state, logs) that holds ``needle``."""
    return [p for p in service.tree.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def cups_service(tmp_path: Path) -> Iterator[CupsService]:
    with running_cups(tmp_path) as service:
        yield service


@contextlib.asynccontextmanager
async def started(service: CupsService, recorder: Recorder, **options: Any) -> AsyncIterator[CupsPrinter]:
    """The backend as the daemon builds it, on the private cupsd's local socket (the van's /run/cups/cups.sock)."""
    ctx = DriverContext(
        kind="printer",
        driver="cups",
        options={
            "queue": service.queue,
            "server": str(service.local_socket),
            "spool": str(service.spool),
            "poll": 0.5,
            "poll_active": 0.1,
            "offline_after": 2.0,
            **options,
        },
        clock=RealClock(),
        emit=recorder.emit,
        runtime_dir=service.base / "run",
    )
    printer = CupsPrinter(ctx)
    await printer.start()
    try:
        yield printer
    finally:
        await printer.close()


def document(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(one_page_pdf(text))
    return path


# --------------------------------------------------------------------------------------------------- printing
async def test_a_pdf_comes_out_of_the_printer_byte_identical_and_its_file_name_stays_out_of_cups(
    cups_service: CupsService, tmp_path: Path
) -> None:
    recorder = Recorder()
    pdf = document(tmp_path, "Jean-Dupont-avis-imposition.pdf", "Avis 2025")
    async with started(cups_service, recorder) as printer:
        with pytest.raises(ValueError):
            await printer.submit(pdf, title=pdf.name, session="s1")
        job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
        await recorder.wait_for(job_is(job_id, "completed"))
        jobs = await printer.jobs("s1")
        assert await printer.jobs("s2") == ()

    assert [(j.id, j.session, j.title, j.state) for j in jobs] == [(job_id, "s1", "kiosk-s1-1", "completed")]
    states = job_states(recorder, job_id)
    assert states[0] == "pending" and states[-1] == "completed" and "aborted" not in states
    printed = cups_service.printed()
    assert len(printed) == 1
    assert printed[0].read_bytes() == pdf.read_bytes()
    assert "Dupont" not in printed[0].name
    assert cups_files_containing(cups_service, b"Dupont") == []


async def test_over_the_loopback_port_a_job_is_followed_but_an_unverifiable_purge_is_reported(
    cups_service: CupsService, tmp_path: Path
) -> None:
    # Over TCP the van's cupsd does not know who asks, so it will not list jobs: the job is followed through its
    # notifications, and the purge verification must say it could not look rather than pass.
    recorder = Recorder()
    pdf = document(tmp_path, "doc.pdf", "over tcp")
    async with started(cups_service, recorder, server="127.0.0.1", port=cups_service.cups_port) as printer:
        job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
        await recorder.wait_for(job_is(job_id, "completed"))
        await asyncio.to_thread(cups_service.pause_queue)
        waiting = await printer.submit(pdf, title="kiosk-s1-2", session="s1")
        await printer.cancel_jobs("s1")  # its own jobs it can still cancel by their ids
        await printer.purge_jobs("s1")
        problems = await printer.verify_purged("s1")
        listing = cups_service.connection().getJobs(which_jobs="all")

    assert [p.read_bytes() for p in cups_service.printed()] == [pdf.read_bytes()]
    assert job_states(recorder, waiting)[-1] == "cancelled" and waiting not in listing
    assert problems and "cannot be checked" in problems[0]


# --------------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("probe", [True, False], ids=["asking-the-printer", "through-cups-only"])
async def test_out_of_paper_tells_the_agent_and_the_job_prints_by_itself_once_refilled(
    cups_service: CupsService, tmp_path: Path, probe: bool
) -> None:
    recorder = Recorder()
    pdf = document(tmp_path, "doc.pdf", "needs paper")
    async with started(cups_service, recorder, probe=probe) as printer:
        await asyncio.to_thread(cups_service.set_paper, 0)
        job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
        await recorder.wait_for(fault("printer.media-empty"))
        await recorder.wait_for(printer_is("printing", reason="media-empty"))
        assert cups_service.printed() == []
        assert "completed" not in job_states(recorder, job_id)

        refilled = recorder.mark()
        await asyncio.to_thread(cups_service.set_paper, 250)
        await recorder.wait_for(job_is(job_id, "completed"), since=refilled)
        await recorder.wait_for(fault("printer.media-empty", cleared=True), since=refilled)

    assert [p.read_bytes() for p in cups_service.printed()] == [pdf.read_bytes()]  # printed once, nothing lost
    assert "aborted" not in job_states(recorder, job_id)


async def test_a_jam_aborts_the_job_tells_the_agent_and_the_next_job_prints(
    cups_service: CupsService, tmp_path: Path
) -> None:
    recorder = Recorder()
    jammed, after = document(tmp_path, "a.pdf", "jammed"), document(tmp_path, "b.pdf", "after the jam")
    async with started(cups_service, recorder) as printer:
        cups_service.jam_next_job()
        first = await printer.submit(jammed, title="kiosk-s1-1", session="s1")
        aborted = await recorder.wait_for(job_is(first, "aborted"))
        await recorder.wait_for(fault("printer.media-jam"))
        assert cups_service.printed() == []

        cleared = recorder.mark()
        second = await printer.submit(after, title="kiosk-s1-2", session="s1")
        await recorder.wait_for(job_is(second, "completed"), since=cleared)
        await recorder.wait_for(fault("printer.media-jam", cleared=True), since=cleared)
        # Since the second job only: the printer's first state (idle, before the jam) matched here before, and the
        # state read next could still be the "printing" of the second job, which CUPS reports a moment after the
        # job's end.
        await recorder.wait_for(
            lambda e: isinstance(e, PrinterChanged) and e.state.status == "idle" and e.state.reasons == (),
            since=cleared,
        )
        assert "cancelled" not in job_states(recorder, first)

    assert isinstance(aborted, JobStateChanged) and aborted.job.reasons  # says why, for the technician
    assert [p.read_bytes() for p in cups_service.printed()] == [after.read_bytes()]


async def test_a_printer_switched_off_shows_unavailable_and_comes_back_by_itself(
    cups_service: CupsService, tmp_path: Path
) -> None:
    recorder = Recorder()
    async with started(cups_service, recorder) as printer:
        await recorder.wait_for(printer_is("idle", present=True))
        off = recorder.mark()
        cups_service.kill_printer()
        await recorder.wait_for(printer_is("unavailable", reason="offline", present=False), since=off)
        await recorder.wait_for(fault("printer.offline"), since=off)

        on = recorder.mark()
        await asyncio.to_thread(cups_service.start_printer)
        await recorder.wait_for(printer_is("idle", present=True), since=on)
        await recorder.wait_for(fault("printer.offline", cleared=True), since=on)
        assert printer.state.reasons == ()


async def test_a_cups_server_that_stops_and_starts_again_leaves_the_backend_working(
    cups_service: CupsService, tmp_path: Path
) -> None:
    recorder = Recorder()
    pdf = document(tmp_path, "doc.pdf", "after the restart")
    async with started(cups_service, recorder) as printer:
        await recorder.wait_for(printer_is("idle", present=True))
        down = recorder.mark()
        cups_service.stop_cupsd()
        await recorder.wait_for(printer_is("unavailable", reason="offline"), since=down)
        with pytest.raises(DeviceError) as refused:
            await printer.submit(pdf, title="kiosk-s1-1", session="s1")
        assert refused.value.key == "printer.offline"

        up = recorder.mark()
        await asyncio.to_thread(cups_service.start_cupsd)
        await recorder.wait_for(printer_is("idle", present=True), since=up)
        await recorder.wait_for(fault("printer.offline", cleared=True), since=up)
        job_id = await printer.submit(pdf, title="kiosk-s1-2", session="s1")
        await recorder.wait_for(job_is(job_id, "completed"), since=up)

    assert [p.read_bytes() for p in cups_service.printed()] == [pdf.read_bytes()]


# --------------------------------------------------------------------------------------------------- set-up
@pytest.mark.parametrize("how", ["ipp-uri", "ipp-usb"])
async def test_a_van_whose_cups_has_no_queue_gets_one_for_its_printer_and_the_doctor_says_what_it_found(
    tmp_path: Path, how: str
) -> None:
    # A freshly flashed van: CUPS runs with no queue at all, the profile names the printer (its URI, or "the one
    # ipp-usb serves", looked for on ipp-usb's ports: here one where nothing listens, then the printer's).
    pdf = document(tmp_path, "doc.pdf", "first print")
    with (
        running_cups(tmp_path / "cups", with_queue=False, formats="image/pwg-raster,image/jpeg") as service,
        socket.socket() as silent,
    ):
        assert not service.connection().getPrinters()
        options: dict[str, Any] = {"device": service.device_uri}
        if how == "ipp-usb":
            first = service.ipp_port - 1
            try:
                silent.bind(("127.0.0.1", first))  # held, never listening: a port ipp-usb has no device on
            except OSError:
                first = service.ipp_port  # taken by something else, which must not pass for the printer
            options = {"device": "ipp-usb", "ipp_usb_ports": [first, service.ipp_port]}
        recorder = Recorder()
        async with started(service, recorder, **options) as printer:
            await recorder.wait_for(printer_is("idle", present=True))
            # At once: the queue is announced only once cupsd has built its PPD, or this job would be refused.
            job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
            done = await recorder.wait_for(job_is(job_id, "completed"))
            await recorder.wait_for(printer_is("idle"), since=recorder.events.index(done))
            findings = {f.name: f for f in await printer.diagnose()}
        queues = service.connection().getPrinters()
        printed = [p.read_bytes()[:4] for p in service.printed()]

    assert list(queues) == [service.queue] and queues[service.queue]["device-uri"] == service.device_uri
    assert "IPP Everywhere" in queues[service.queue]["printer-make-and-model"]
    found = findings["print_queue"]
    assert found.verdict == "ok", found
    for said in ("created by kioskd", "Kiosk Test Printer", "image/pwg-raster", "image/jpeg", "converted", "idle"):
        assert said in found.detail, (said, found.detail)
    assert printed == [PWG_RASTER]


async def test_when_no_printer_answers_no_queue_is_made_and_the_doctor_says_why(tmp_path: Path) -> None:
    with running_cups(tmp_path / "cups", with_queue=False) as service:
        service.kill_printer()
        recorder = Recorder()
        async with started(service, recorder, device=service.device_uri) as printer:
            await asyncio.sleep(1.0)  # the watch has tried
            findings = {f.name: f for f in await printer.diagnose()}
            assert printer.state.present is False
        queues = service.connection().getPrinters()

    assert queues == {}  # no half-made queue left stopped for ever
    found = findings["print_queue"]
    assert found.verdict == "fail" and found.key == "doctor.printer.no_queue"
    assert "no printer answers" in found.detail and str(service.ipp_port) in found.detail
    assert found.key in CATALOGUE


def test_kioskctl_doctor_on_a_van_flashed_without_a_queue_says_what_kioskd_made(tmp_path: Path) -> None:
    # The technician's path: kioskd on a profile naming the printer, CUPS without a queue, `kioskctl doctor`.
    with running_cups(tmp_path / "cups", with_queue=False, formats="image/pwg-raster,image/jpeg") as service:
        printer = (
            f'[devices.printer]\ndriver = "cups"\nqueue = "{service.queue}"\nserver = "{service.local_socket}"\n'
            f'spool = "{service.spool}"\ndevice = "{service.device_uri}"\npoll = 0.5\n'
        )
        profile = tmp_path / "profile.toml"
        sim_printer = '[devices.printer]\ndriver = "sim"\npaper = 250\n'
        assert sim_printer in SIM_PROFILE.read_text()
        profile.write_text(SIM_PROFILE.read_text().replace(sim_printer, printer))
        daemon = start_daemon(tmp_path, "--profile", str(profile))
        try:
            daemon.wait_for("READY=1")
            deadline = time.monotonic() + WAIT
            while True:
                result = daemon.ctl("--json", "doctor", check=False)
                checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
                if checks.get("print_queue", {}).get("verdict") == "ok" or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            text = daemon.ctl("doctor", check=False).stdout
        finally:
            daemon.kill()

    line, printer_line = checks["print_queue"], checks["printer"]
    assert line["verdict"] == "ok", line
    assert "created by kioskd" in line["detail"] and "Kiosk Test Printer" in line["detail"], line
    assert "image/pwg-raster" in line["detail"] and "converted" in line["detail"], line
    assert printer_line["verdict"] == "ok", printer_line
    assert "print_queue" in text and "Kiosk Test Printer" in text  # the table for people shows it too


# --------------------------------------------------------------------------------------------------- formats
async def test_a_printer_that_prints_no_pdf_gets_the_pdf_converted_by_cups(tmp_path: Path) -> None:
    # IPP Everywhere only requires PWG raster and JPEG: such a printer refuses the PDF kioskd would send untouched.
    pdf = document(tmp_path, "doc.pdf", "converted")
    with running_cups(tmp_path / "cups", formats="image/pwg-raster,image/jpeg") as service:
        recorder = Recorder()
        async with started(service, recorder) as printer:
            job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
            await recorder.wait_for(job_is(job_id, "completed"))
        printed = [p.read_bytes() for p in service.printed()]

    assert "aborted" not in job_states(recorder, job_id)
    assert len(printed) == 1 and printed[0][:4] == PWG_RASTER, printed[0][:16]


# --------------------------------------------------------------------------------------------------- ipp-usb
async def test_a_printer_that_stalls_is_offline_only_after_offline_after(tmp_path: Path) -> None:
    # ipp-usb holds a request for seconds while the printer's few USB interfaces are busy (CUPS printing, the
    # scanner): that is not a printer switched off. Only silence longer than offline_after is.
    offline_after = 4.0
    pdf = document(tmp_path, "doc.pdf", "through a slow link")
    with running_cups(tmp_path / "cups", with_queue=False) as service, StallingProxy(service.ipp_port) as proxy:
        service.add_queue_through(proxy.device_uri)
        recorder = Recorder()
        async with started(service, recorder, offline_after=offline_after) as printer:
            await recorder.wait_for(printer_is("idle", present=True))
            slow = recorder.mark()
            proxy.stall = 2.5  # longer than the old 2 s "offline" timeout, shorter than offline_after
            await asyncio.sleep(3 * 2.5)
            job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")  # and while printing
            await recorder.wait_for(job_is(job_id, "completed"), since=slow)
            held = proxy.held
            during_slow = recorder.events[slow:]
            assert printer.state.present

            silent = recorder.mark()
            proxy.stall = 3 * offline_after
            went_silent = time.monotonic()
            await recorder.wait_for(fault("printer.offline"), since=silent)
            silent_for = time.monotonic() - went_silent
            await recorder.wait_for(printer_is("unavailable", reason="offline", present=False), since=silent)

            back = recorder.mark()
            proxy.stall = 0
            await recorder.wait_for(fault("printer.offline", cleared=True), since=back)

    assert held >= 3, "the proxy held the probe's requests"
    assert [e for e in during_slow if fault("printer.offline")(e)] == []
    assert not [e for e in during_slow if isinstance(e, PrinterChanged) and not e.state.present]
    # Not before offline_after since the printer's last answer, which came at most one poll (0.5 s) before the switch.
    assert silent_for >= offline_after - 0.5 - 0.2, silent_for


async def test_while_a_job_waits_the_printer_is_asked_at_the_idle_period_not_at_the_active_one(
    tmp_path: Path,
) -> None:
    # CUPS follows the job at poll_active; the printer itself (through ipp-usb: interfaces shared with the job
    # being printed) is asked no more often than at poll.
    poll, poll_active, window = 1.0, 0.1, 4.0
    pdf = document(tmp_path, "doc.pdf", "waits for paper")
    with running_cups(tmp_path / "cups", with_queue=False) as service, StallingProxy(service.ipp_port) as proxy:
        service.add_queue_through(proxy.device_uri)
        recorder = Recorder()
        async with started(service, recorder, poll=poll, poll_active=poll_active) as printer:
            await asyncio.to_thread(service.set_paper, 0)
            job_id = await printer.submit(pdf, title="kiosk-s1-1", session="s1")
            await recorder.wait_for(printer_is("printing", reason="media-empty"))
            since = time.monotonic()
            await asyncio.sleep(window)
            probes = proxy.probes_since(since)
            assert job_states(recorder, job_id)[-1] not in ("completed", "aborted", "cancelled")
            await printer.cancel_jobs("s1")

    assert 1 <= probes <= window / poll + 1, probes  # at poll_active it would be about 40


# --------------------------------------------------------------------------------------------------- the wipe
@pytest.mark.parametrize("stock_retention", [False, True], ids=["van-cupsd", "stock-cupsd-keeps-files-and-history"])
async def test_the_purge_leaves_no_job_no_file_and_no_byte_of_the_session_in_cups(
    tmp_path: Path, stock_retention: bool
) -> None:
    canary, other = "CANARY-7f3e9b21", "OTHER-CITIZEN-5d1c"
    session, next_one = "a1b2c3d4", "e5f6a7b8"
    with running_cups(tmp_path / "cups", stock_retention=stock_retention) as service:
        recorder = Recorder()
        async with started(service, recorder) as printer:
            printed = await printer.submit(
                document(tmp_path, "1.pdf", canary), title=f"kiosk-{session}-1", session=session
            )
            await recorder.wait_for(job_is(printed, "completed"))
            await asyncio.to_thread(service.pause_queue)  # what follows waits in the spool, as behind a jam
            waiting = await printer.submit(
                document(tmp_path, "2.pdf", canary), title=f"kiosk-{session}-2", session=session
            )
            kept = await printer.submit(
                document(tmp_path, "3.pdf", other), title=f"kiosk-{next_one}-1", session=next_one
            )
            await recorder.wait_for(fault("printer.paused"))
            before = await printer.verify_purged(session)

            await printer.cancel_jobs(session)
            await printer.purge_jobs(session)

            after = await printer.verify_purged(session)
            others_left = await printer.verify_purged(next_one)
            await asyncio.sleep(1.0)  # a few polls: the purged jobs' last events must not bring them back
            left = await printer.jobs(session)
            listing = service.connection().getJobs(which_jobs="all", requested_attributes=["job-id", "job-name"])

        assert any("still listed" in p for p in before) and any("document file" in p for p in before)
        assert after == ()
        assert left == ()
        assert printed not in listing and waiting not in listing
        assert not [a for a in listing.values() if str(a.get("job-name", "")).startswith(f"kiosk-{session}-")]
        assert listing[kept]["job-name"] == f"kiosk-{next_one}-1"  # the next citizen's job is not touched
        assert others_left  # and the verification of that session sees it
        assert job_states(recorder, waiting)[-1] == "cancelled"
        assert cups_files_containing(service, canary.encode()) == []
        assert cups_files_containing(service, other.encode())  # the search does find a document that is there


@pytest.mark.parametrize("stock_retention", [False, True], ids=["van-cupsd", "stock-cupsd-keeps-files-and-history"])
async def test_jobs_left_by_an_earlier_run_are_found_by_their_title_and_purged(
    tmp_path: Path, stock_retention: bool
) -> None:
    # kioskd restarted mid-session (a crash): the pending wipe must still find the session's jobs in CUPS, the
    # finished ones a stock cupsd keeps (it lists them without their titles unless asked well) and the one waiting.
    session = "c0ffee00"
    with running_cups(tmp_path / "cups", stock_retention=stock_retention) as service:
        recorder = Recorder()
        async with started(service, recorder) as printer:
            done = await printer.submit(
                document(tmp_path, "1.pdf", "done"), title=f"kiosk-{session}-1", session=session
            )
            await recorder.wait_for(job_is(done, "completed"))
            await asyncio.to_thread(service.pause_queue)
            waiting = await printer.submit(
                document(tmp_path, "2.pdf", "waiting"), title=f"kiosk-{session}-2", session=session
            )
        async with started(service, Recorder()) as restarted:
            found = [j.id for j in await restarted.jobs(session)]
            before = await restarted.verify_purged(session)
            await restarted.cancel_jobs(session)
            await restarted.purge_jobs(session)
            after = await restarted.verify_purged(session)
        listing = service.connection().getJobs(which_jobs="all")

    assert found == [waiting]  # the restarted backend knows the unfinished job at once
    assert before and after == ()
    assert done not in listing and waiting not in listing


def test_every_fault_the_backend_reports_has_a_message_for_the_agent() -> None:
    missing = sorted(r for r in FAULT_REASONS if f"printer.{r}" not in CATALOGUE)
    assert missing == []


# --------------------------------------------------------------------------------------------------- the session app
APP_TITLE = "Avis d'imposition de M. Dupont"  # what the session app names its print: the citizen's name


def is_app_job(job_id: int) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, JobStateChanged) and e.job.id == job_id


@pytest.mark.parametrize("stock_retention", [False, True], ids=["van-cupsd", "stock-cupsd-keeps-files-and-history"])
async def test_the_session_apps_own_prints_are_the_sessions_under_an_anonymous_title_and_the_wipe_removes_them(
    tmp_path: Path, stock_retention: bool, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-APP-41c9e2"
    caplog.set_level("DEBUG")
    with running_cups(tmp_path / "cups", stock_retention=stock_retention) as service:
        recorder = Recorder()
        # A watch that polls by itself only every minute: the wipe must see the app's print of a moment ago anyway.
        async with started(service, recorder, poll=60) as printer:
            printer.set_session("s1")
            # The app prints through CUPS itself (as Chromium does), under its own title: one page comes out...
            printed = await asyncio.to_thread(service.lp, document(tmp_path, "a.pdf", canary), APP_TITLE)
            assert [j.id for j in await printer.jobs("s1")] == [printed]
            await recorder.wait_for(job_is(printed, "completed"))
            # ... and one waits in the spool, as behind a jam, when the citizen leaves.
            await asyncio.to_thread(service.pause_queue)
            waiting = await asyncio.to_thread(service.lp, document(tmp_path, "b.pdf", canary), APP_TITLE)
            during = await printer.jobs("s1")
            await recorder.wait_for(is_app_job(waiting))
            nobodys = await printer.jobs("")
            before = await printer.verify_purged("s1")

            await printer.cancel_jobs("s1")
            await printer.purge_jobs("s1")

            after = await printer.verify_purged("s1")
            await asyncio.sleep(1.0)  # a few polls: the purged jobs' last events must not bring them back
            left = await printer.jobs("s1")
            listing = service.connection().getJobs(which_jobs="all", requested_attributes=["job-id", "job-name"])

        # Counted and waited for as the session's own (the wipe's print grace looks at jobs(session)).
        assert [(j.id, j.session) for j in during] == [(printed, "s1"), (waiting, "s1")]
        assert during[0].state == "completed" and during[1].state not in ("completed", "cancelled", "aborted")
        assert all(j.title.startswith("kiosk-s1-") and "Dupont" not in repr(j) for j in during)
        assert nobodys == ()
        app_events = [e for e in recorder.events if isinstance(e, JobStateChanged) and e.job.id in (printed, waiting)]
        assert app_events and all(e.job.session == "s1" for e in app_events)
        assert job_states(recorder, waiting)[-1] == "cancelled"
        # The citizen's name reaches no event, no log line, no verification message.
        assert [e for e in recorder.events if "Dupont" in repr(e) or "imposition" in repr(e)] == []
        assert "Dupont" not in caplog.text and "imposition" not in caplog.text
        assert any("still listed" in p for p in before) and not any("Dupont" in p for p in before)

        assert after == ()
        assert left == ()
        assert printed not in listing and waiting not in listing
        assert cups_files_containing(service, canary.encode()) == []
        assert cups_files_containing(service, b"Dupont") == []


@pytest.mark.parametrize("stock_retention", [False, True], ids=["van-cupsd", "stock-cupsd-keeps-files-and-history"])
async def test_after_a_restart_the_session_apps_prints_left_in_cups_go_with_any_sessions_purge(
    tmp_path: Path, stock_retention: bool
) -> None:
    # kioskd crashed: nobody knows which session the app's prints were for, so the first wipe of any session must
    # remove them (one still waiting, and one printed that a stock cupsd keeps with its file), and still leave
    # alone a job kioskd printed for another session.
    canary = "CANARY-LEFT-0b7d"
    with running_cups(tmp_path / "cups", stock_retention=stock_retention) as service:
        recorder = Recorder()
        async with started(service, recorder) as before_the_crash:
            printed = await asyncio.to_thread(service.lp, document(tmp_path, "a.pdf", canary), APP_TITLE)
            await recorder.wait_for(job_is(printed, "completed"))
            await asyncio.to_thread(service.pause_queue)
            kept = await before_the_crash.submit(
                document(tmp_path, "k.pdf", "next citizen"), title="kiosk-e5f6-1", session="e5f6"
            )
        waiting = await asyncio.to_thread(service.lp, document(tmp_path, "b.pdf", canary), APP_TITLE)

        recorder = Recorder()
        async with started(service, recorder) as printer:  # no set_session: no session open after the restart
            nobodys = await printer.jobs("")
            before = await printer.verify_purged("a1b2")
            await printer.cancel_jobs("a1b2")
            await printer.purge_jobs("a1b2")
            after = await printer.verify_purged("a1b2")
        listing = service.connection().getJobs(which_jobs="all", requested_attributes=["job-id", "job-name"])

        assert [(j.id, j.session) for j in nobodys] == [(waiting, "")]  # the one not finished: nobody's
        assert "Dupont" not in repr(nobodys) and not any("Dupont" in repr(e) for e in recorder.events)
        assert before and after == ()
        assert printed not in listing and waiting not in listing
        assert listing[kept]["job-name"] == "kiosk-e5f6-1"
        assert cups_files_containing(service, canary.encode()) == []
        assert cups_files_containing(service, b"Dupont") == []
        assert cups_files_containing(service, b"next citizen")  # the search does find a document that is there
