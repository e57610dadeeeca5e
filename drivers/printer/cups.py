"""The printer backend for CUPS (pycups): one queue (created with IPP Everywhere when the profile names the printer
and CUPS has none), its printer's state and faults, each session's jobs (the session app's own prints included),
and the purge that leaves nothing of a session in CUPS.

pycups blocks, so every pycups call runs on this backend's one worker thread; the event loop only awaits results.
A document reaches CUPS as bytes under its anonymous title: its file name is never sent, stored or logged, and the
title the session app gives its own prints is read only to tell them apart, never kept, emitted or logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import cups
from pydantic import Field, field_validator, model_validator

from drivers.printer.ipp import DeviceProbe, DeviceStatus, Unreachable, http_url
from kioskd.hal import (
    JOB_FINISHED,
    DeviceError,
    DeviceFault,
    Diagnosis,
    DriverContext,
    DriverOptions,
    JobState,
    JobStateChanged,
    PrinterChanged,
    PrinterState,
    PrinterStatus,
    PrintJob,
    Verdict,
)

log = logging.getLogger(__name__)

CUPSD_CONF = Path("/etc/cups/cupsd.conf")

T = TypeVar("T")

# Reasons an agent must hear about: each has a catalogue message "printer.<reason>" (kioskd/messages.py). Others
# (media-needed next to media-empty, connecting-to-device …) show in the state's reasons only.
FAULT_REASONS = frozenset(
    {
        "media-empty",
        "media-jam",
        "media-low",
        "toner-low",
        "toner-empty",
        "marker-supply-low",
        "marker-supply-empty",
        "door-open",
        "cover-open",
        "input-tray-missing",
        "output-area-full",
        "offline",
        "paused",
    }
)
JOB_STATES: dict[int, JobState] = {
    3: "pending",
    4: "held",
    5: "processing",
    6: "stopped",
    7: "cancelled",
    8: "aborted",
    9: "completed",
}
QUEUE_ATTRIBUTES = ["printer-state", "printer-state-reasons", "printer-make-and-model", "device-uri"]
JOB_ATTRIBUTES = ["job-id", "job-name", "job-state", "job-state-reasons"]  # job-id, or CUPS answers nothing
TITLE = re.compile(r"kiosk-(?P<session>[A-Za-z0-9_.-]+)-(?P<n>[0-9]+)")
CHUNK = 64 * 1024
HTTP_CONTINUE = 100  # what libcups answers for each chunk of a document it accepted (pycups has no name for it)
LEASE = 600  # seconds a notification subscription lives unless renewed; a crashed kioskd's one expires by itself
# The printer's own answers (``probe``). One request at a time, never more often than ``poll``: ipp-usb has two or
# three USB interfaces for CUPS, sane-airscan and us, and holds a request for seconds while they are busy. A request
# may take until the printer would count as offline (``offline_after`` since its last answer); one refused at once
# (nothing listens) is retried after RETRY_FIRST seconds, doubling up to ``poll``.
PROBE_TIMEOUT_MIN = 1.0
RETRY_FIRST = 0.5
FIND_TIMEOUT = 5.0  # seconds a candidate printer has to answer when the queue is to be created
QUEUE_READY_TIMEOUT = 60.0  # seconds cupsd has to build an IPP Everywhere queue's PPD (its own thread asks the printer)
CREATE_RETRY = 10.0  # seconds before trying again to create a queue whose printer did not answer
RAW_QUEUE_MODEL = "Local Raw Printer"  # what cupsd says of a queue whose IPP Everywhere PPD is not built yet
PDF = "application/pdf"

# libcups's answers when the server is down, went away mid-request, or restarted under an open connection.
DISCONNECTED = frozenset({cups.IPP_SERVICE_UNAVAILABLE, cups.IPP_INTERNAL_ERROR})
GONE = frozenset({cups.IPP_NOT_FOUND, cups.IPP_NOT_POSSIBLE})  # a job already finished, purged, or never known
REFUSED_LISTING = frozenset({cups.IPP_NOT_AUTHORIZED, cups.IPP_FORBIDDEN, cups.IPP_AUTHENTICATION_CANCELED})


class CupsPrinterOptions(DriverOptions):
    queue: str = Field(pattern=r"^[^\s/#\\]{1,127}$", description="the CUPS queue (lpstat -p)")
    server: str | None = Field(
        None,
        min_length=1,
        description="the CUPS server: the local socket path (/run/cups/cups.sock), a host name or an address; "
        "default libcups's own (the local socket). On the local socket CUPS knows kioskd's uid and shows it the "
        "titles of its jobs; over TCP it may not, and the purge cannot be verified.",
    )
    port: int | None = Field(None, ge=1, le=65535, description="the CUPS server's TCP port (631)")
    poll: float = Field(5.0, gt=0, le=300, description="seconds between IPP polls while no job is under way")
    poll_active: float = Field(
        0.25, gt=0, le=60, description="seconds between IPP polls while a job is pending or printing"
    )
    spool: Path | None = Field(
        Path("/var/spool/cups"),
        description="CUPS's RequestRoot, where the purge checks that no document or control file of the session "
        "is left; null when the server is another machine",
    )
    probe: bool = Field(
        True,
        description="also ask the printer itself (ipp:// and ipps:// device URIs), so that a printer switched off, "
        "hung or out of paper shows while no job is under way",
    )
    convert: bool | Literal["auto"] = Field(
        "auto",
        description="auto: ask the printer what it prints (document-format-supported); a PDF reaches a printer "
        "that prints PDF byte for byte (no filter writes a temporary copy of a citizen's document), and CUPS's "
        "filters convert it for one that does not (IPP Everywhere only requires PWG raster and JPEG) or that "
        "cannot be asked; true: always let CUPS's filters convert (printers with a vendor driver); false: never",
    )
    device: str | None = Field(
        None,
        min_length=1,
        description="the printer to create the queue for (IPP Everywhere, lpadmin -m everywhere) when CUPS has no "
        "queue of that name: an ipp:// or ipps:// URI, or 'ipp-usb' (the driverless USB printer ipp-usb serves "
        "on loopback, looked for on ipp_usb_ports); none: the queue must exist",
    )
    ipp_usb_ports: tuple[int, int] = Field(
        (60000, 60009),
        description="the first and last loopback TCP port ipp-usb gives its devices (http-min-port, http-max-port "
        "of the image's /etc/ipp-usb/ipp-usb.conf): where device = 'ipp-usb' looks for the printer",
    )
    offline_after: float = Field(
        30.0,
        gt=0,
        le=600,
        description="seconds the printer may leave the probe unanswered before it counts as offline: through "
        "ipp-usb (a few USB interfaces shared with CUPS and the scanner) a request can stall for seconds",
    )
    job_options: dict[str, str] = Field(
        default_factory=dict, description="IPP job attributes for every job, e.g. media = 'iso_a4_210x297mm'"
    )
    purge_timeout: float = Field(10.0, gt=0, le=120, description="seconds the purge waits for CUPS to drop jobs")

    @field_validator("device")
    @classmethod
    def _ipp_or_ipp_usb(cls, device: str | None) -> str | None:
        if device is not None and device != "ipp-usb" and not re.fullmatch(r"ipps?://[^\s/]+\S*", device):
            raise ValueError("device must be an ipp:// or ipps:// URI, or 'ipp-usb'")
        return device

    @model_validator(mode="after")
    def _ports_ordered(self) -> CupsPrinterOptions:
        first, last = self.ipp_usb_ports
        if not 1 <= first <= last <= 65535 or last - first > 99:
            raise ValueError("ipp_usb_ports must be two TCP ports, first <= last, at most 100 apart")
        return self


@dataclass
class _Tracked:
    job: PrintJob
    unseen: int = 0  # polls in a row in which CUPS listed this unfinished job nowhere
    foreign: bool = False  # the session app printed it (or CUPS withheld its title): every wipe purges it


@dataclass(frozen=True)
class _QueueView:
    """What CUPS said of the queue in one poll (worker thread → event loop)."""

    reachable: bool
    found: bool = False
    state: int = 0
    reasons: tuple[str, ...] = ()
    model: str = ""
    device_uri: str = ""


@dataclass(frozen=True)
class _Created:
    """The queue this backend created: for which printer, and what the printer said of itself then."""

    uri: str
    model: str
    formats: tuple[str, ...]


class _Unreachable(Exception):
    """The CUPS server does not answer (down, restarting, or the connection broke)."""


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, cups.IPPError) and exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None


def _disconnected(exc: BaseException) -> bool:
    """Whether a pycups exception means the server is unreachable (as opposed to a refusal)."""
    return isinstance(exc, RuntimeError | cups.HTTPError) or _status_of(exc) in DISCONNECTED


def _reasons(values: object) -> tuple[str, ...]:
    """IPP state reasons without their severity suffix, in order, once each; "none" and CUPS's own bookkeeping
    reasons (cups-waiting-for-job-completed …) dropped."""
    items = [values] if isinstance(values, str) else list(values) if isinstance(values, Iterable) else []
    found: list[str] = []
    for item in items:
        reason = str(item)
        for suffix in ("-error", "-warning", "-report"):
            reason = reason.removesuffix(suffix)
        if reason != "none" and not reason.startswith("cups-") and reason not in found:
            found.append(reason)
    return tuple(found)


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; unlike ``os.path.exists`` a directory we may not search raises instead of saying
    no, so an unreadable spool never passes for a clean one."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _shown_uri(uri: str) -> str:
    """A device URI as logs and the doctor may show it: without credentials."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _session_of(title: object) -> str | None:
    match = TITLE.fullmatch(title) if isinstance(title, str) else None
    return match["session"] if match else None


def _app_title(session: str, job_id: int) -> str:
    """The anonymous title kioskd shows for a job the session app printed (its own title may name the citizen).
    It never matches ``TITLE``, so such a job is never taken for one kioskd submitted."""
    return f"kiosk-{session}-app{job_id}" if session else f"kiosk-app{job_id}"


class CupsPrinter:
    """A CUPS queue as the station's printer (``kioskd.hal.Printer``).

    Job states come from a CUPS notification subscription (pulled with Get-Notifications): with the van's
    ``PreserveJobHistory No`` a finished job disappears from CUPS at once, and its event is the only trace of how
    it ended. The queue, its jobs and the printer are polled at ``poll`` seconds, ``poll_active`` while a job is
    under way. The printer itself is asked directly (``probe``), since CUPS only hears from it during a job: at
    ``poll`` seconds even while printing, one request at a time, and it is offline only after ``offline_after``
    seconds without an answer. When CUPS has no such queue and the profile names the printer (``device``), the
    backend creates it with IPP Everywhere and waits until cupsd has built its PPD.

    A job not titled ``kiosk-<session>-<n>`` is "foreign": the session app printed it through CUPS. The session
    open when this backend first sees it adopts it (none open: nobody's, ``""``) under an anonymous title; every
    purge removes all foreign jobs, whoever adopted them, since after a restart nobody knows whose they were."""

    options_model: ClassVar[type[CupsPrinterOptions]] = CupsPrinterOptions
    cupsd_conf: Path = CUPSD_CONF  # the local server's configuration, read by ``diagnose``

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.opts = ctx.parse_options(self.options_model)
        self._state = PrinterState(present=False, name=self.opts.queue, status="unavailable", reasons=())
        self._executor: ThreadPoolExecutor | None = None
        self._probe: DeviceProbe | None = None
        self._asker: DeviceProbe | None = None  # finds the printer, and asks what it prints, without ``probe`` too
        self._watch: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._probe_wake = asyncio.Event()
        # Event loop only: the latest CUPS view, the printer's latest answer, and what creating the queue found.
        self._view = _QueueView(reachable=False)
        self._device_uri = ""
        self._device: DeviceStatus | None = None
        self._device_down = False
        self._last_answer: float | None = None
        self._formats: dict[str, tuple[str, ...]] = {}  # per device URI: what the printer said it prints
        self._created: _Created | None = None
        self._create_note = ""  # why there is no queue yet (for the doctor)
        self._create_after = 0.0
        self._last_failure: str | None = None
        # The open session: foreign jobs first seen now are its own. Set on the event loop, read on the worker: one
        # reference, replaced whole, so no lock is needed.
        self._current_session: str | None = None
        # Worker thread only, from here on.
        self._conn: Any = None
        self._subscription: int | None = None
        self._next_event = 1
        self._renew_at = 0.0
        self._reconcile = True  # events may have been missed: trust the job listing once
        self._jobs: dict[int, _Tracked] = {}
        self._purged: dict[str, set[int]] = {}
        self._cancelling: set[int] = set()
        self._gone: set[int] = set()  # purged: a late event must not bring them back
        self._stale_subscription: int | None = None
        self._listing_refused = False
        self._busy = False  # a job is under way (read by the event loop to pick the poll period)
        self._unreachable_logged = False
        self._job_trouble: str | None = None

    # ------------------------------------------------------------------------------------------- contract
    @property
    def state(self) -> PrinterState:
        return self._state

    async def diagnose(self) -> list[Diagnosis]:
        """``kioskctl doctor``'s "cups" line: the server must keep neither job history (titles, users) nor job files,
        or a citizen's document outlives the wipe in CUPS; once started, its "print_queue" line: the queue, who
        made it, its printer's make, model and formats, and its state."""
        found = [await asyncio.to_thread(privacy_check, self.cupsd_conf)]
        if self._executor is not None:
            found.append(await self._queue_diagnosis())
        return found

    async def start(self) -> None:
        """Begin watching the queue; a CUPS server that is down only makes the printer unavailable."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="cups-printer", initializer=self._configure_thread
        )
        self._asker = DeviceProbe(FIND_TIMEOUT)
        if self.opts.probe:
            self._probe = DeviceProbe(self.opts.offline_after)
        await self._poll_safely(create=False)  # creating a queue can take a while: the watch does it, not start
        loop = asyncio.get_running_loop()
        self._watch = loop.create_task(self._watch_loop(), name="cups-printer-watch")
        if self._probe is not None:
            self._probing = loop.create_task(self._probe_loop(), name="cups-printer-probe")
        if self.opts.device is not None and not self._view.found:
            self._wake.set()

    async def close(self) -> None:
        for task in (self._watch, self._probing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch = self._probing = None
        if self._executor is not None:
            with contextlib.suppress(Exception):
                await self._call(self._unsubscribe)
            self._executor.shutdown(wait=True)
            self._executor = None
        for probe in (self._probe, self._asker):
            if probe is not None:
                await probe.aclose()
        self._probe = self._asker = None

    def set_session(self, session: str | None) -> None:
        """The session open now (None between sessions): foreign jobs this backend sees from now on are its own.
        Those it already tracks keep their session (one seen between sessions stays nobody's)."""
        self._current_session = session

    async def submit(self, document: Path, *, title: str, session: str) -> int:
        """Send ``document`` as one job titled ``title`` (``kiosk-<session>-<n>``); returns the CUPS job id.

        Raises ``DeviceError`` when CUPS is unreachable or refuses the job, or the document cannot be read."""
        if _session_of(title) != session:
            raise ValueError("a job's title must be kiosk-<session>-<n> for its own session")
        fmt = await self._document_format()
        job_id = await self._call(self._submit, document, title, session, fmt)
        self._wake.set()  # end the idle wait now: from here the watch polls at the active period
        return job_id

    async def jobs(self, session: str) -> tuple[PrintJob, ...]:
        """The session's jobs, the session app's included, after one look at CUPS's news (a CUPS that does not
        answer leaves them as last seen)."""
        jobs = await self._call(self._session_jobs, session)
        if self._busy:
            self._wake.set()  # a job found just now: from here the watch polls at the active period
        return jobs

    async def cancel_jobs(self, session: str) -> None:
        """Cancel every job of the session that has not finished, the session app's included."""
        await self._call(self._cancel, session)

    async def purge_jobs(self, session: str) -> None:
        """Cancel what has not finished, then purge every job of the session and every foreign job (their files and
        their history), and wait (up to ``purge_timeout``) until CUPS lists none of them and the spool holds none
        of their files."""
        deadline = self.ctx.clock.monotonic() + self.opts.purge_timeout
        while True:
            left = await self._call(self._purge, session)
            if not left:
                return
            if self.ctx.clock.monotonic() >= deadline:
                log.warning("session %s: %d print job(s) still in CUPS after the purge", session, left)
                return  # verify_purged says what is left; the wipe reports it
            await self.ctx.clock.sleep(0.1)

    async def verify_purged(self, session: str) -> tuple[str, ...]:
        """What CUPS still holds of the session or of any foreign job: jobs listed, document and control files in
        the spool (counts, never titles)."""
        return await self._call(self._verify, session)

    # ------------------------------------------------------------------------------------------- plumbing
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise DeviceError("the printer backend is not started", where="printer", key="printer.offline")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _configure_thread(self) -> None:
        # libcups keeps its server per thread: set it on the worker, where every pycups call runs. A Connection
        # built with host=/port= instead is taken for a direct printer connection and refuses queue names.
        if self.opts.server is not None:
            cups.setServer(self.opts.server)
        if self.opts.port is not None:
            cups.setPort(self.opts.port)

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = cups.Connection()
            except RuntimeError:
                raise _Unreachable from None
        return self._conn

    def _drop(self) -> None:
        """Forget the connection after a failure. A restarted cupsd may have lost the subscription or restarted its
        event numbers: a new one is taken on reconnection, and the job listing is trusted once."""
        self._conn = None
        self._reconcile = True
        if self._subscription is not None:
            self._stale_subscription, self._subscription = self._subscription, None

    def _emit_job(self, tracked: _Tracked, job: PrintJob) -> None:
        if job != tracked.job:
            tracked.job = job
            self.ctx.emit(JobStateChanged(job))

    # ------------------------------------------------------------------------------------------- watching
    async def _watch_loop(self) -> None:
        while True:
            period = self.opts.poll_active if self._busy else self.opts.poll
            timer = self.ctx.clock.call_later(period, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            self._wake.clear()
            await self._poll_safely()

    async def _poll_safely(self, create: bool = True) -> None:
        try:
            await self._poll(create)
        except Exception as exc:  # a surprise from CUPS must not end the watch: the next poll starts afresh
            failure = f"{type(exc).__name__}: {exc}"
            if failure != self._last_failure:  # once per kind of failure, not every few seconds
                log.exception("printer %s: poll failed", self.opts.queue)
                self._last_failure = failure
            with contextlib.suppress(Exception):
                await self._call(self._drop)
        else:
            self._last_failure = None

    async def _poll(self, create: bool = True) -> None:
        view = await self._call(self._poll_cups)
        if create and view.reachable and not view.found and self.opts.device is not None:
            view = await self._create_queue()
        self._view = view
        if view.device_uri != self._device_uri:
            # Another printer (or none): what the last one said no longer counts, and the new one is asked now.
            self._device_uri, self._device, self._device_down, self._last_answer = view.device_uri, None, False, None
            self._probe_wake.set()
        self._publish(self._printer_state(view, self._device, self._device_down))

    async def _pause(self, wake: asyncio.Event, seconds: float) -> None:
        timer = self.ctx.clock.call_later(seconds, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()
        wake.clear()

    async def _probe_loop(self) -> None:
        """Ask the printer itself, one request at a time, at ``poll`` seconds (retrying sooner after a refusal);
        it counts as offline once ``offline_after`` seconds passed since its last answer."""
        failures = 0
        while True:
            try:
                failures = await self._probe_once(failures)
            except Exception as exc:  # a surprise must not end the probing: the next round starts afresh
                failure = f"{type(exc).__name__}: {exc}"
                if failure != self._last_failure:
                    log.exception("printer %s: probe failed", self.opts.queue)
                    self._last_failure = failure
                await self._pause(self._probe_wake, self.opts.poll)

    async def _probe_once(self, failures: int) -> int:
        """One question to the printer and the wait after it; returns how many failed in a row."""
        assert self._probe is not None
        clock, uri = self.ctx.clock, self._device_uri
        if http_url(uri) is None:  # no queue yet, or a printer only CUPS can reach (usb://, dnssd://)
            await self._pause(self._probe_wake, self.opts.poll)
            return 0
        if self._last_answer is None:
            self._last_answer = clock.monotonic()  # the time to offline counts from the first question
        deadline = self._last_answer + self.opts.offline_after
        try:
            answer = await self._probe.status(uri, within=max(deadline - clock.monotonic(), PROBE_TIMEOUT_MIN))
        except Unreachable:
            failures += 1
            down = clock.monotonic() >= deadline
        else:
            failures, down, self._last_answer = 0, False, clock.monotonic()
            if answer is not None:
                self._device = answer
                if answer.formats:
                    self._formats[uri] = answer.formats
        if uri != self._device_uri:
            return 0  # the queue got another printer meanwhile: this answer was the old one's
        if down != self._device_down:
            log.info("printer %s: %s", self.opts.queue, "no answer: offline" if down else "the printer answers")
        self._device_down = down
        self._publish(self._printer_state(self._view, self._device, down))
        wait = self.opts.poll
        if failures:
            wait = min(wait, RETRY_FIRST * 2 ** (failures - 1))
            if not down:  # ask again by the deadline, so offline is said on time
                wait = min(wait, max(deadline - clock.monotonic(), 0.05))
        await self._pause(self._probe_wake, wait)
        return failures

    # ------------------------------------------------------------------------------------------- the queue
    async def _create_queue(self) -> _QueueView:
        """CUPS has no queue of that name: create it for the profile's printer with IPP Everywhere, and wait until
        cupsd has built its PPD (Add-Printer returns at once; a job sent before is refused). A printer that does
        not answer is tried again after CREATE_RETRY seconds."""
        missing = _QueueView(reachable=True, found=False)
        clock = self.ctx.clock
        if clock.monotonic() < self._create_after:
            return missing
        self._create_after = clock.monotonic() + CREATE_RETRY
        found = await self._find_device()
        if found is None:
            self._create_note = (
                f"no queue {self.opts.queue!r}, and no printer answers at {self._device_wanted()}: is it on and "
                "plugged in?"
            )
            log.warning("printer %s: %s", self.opts.queue, self._create_note)
            return missing
        uri, answer = found
        try:
            await self._call(self._add_queue, uri)
        except cups.IPPError as exc:
            if _disconnected(exc):
                raise
            self._create_note = (
                f"CUPS refused to create the queue ({cups.ippErrorString(_status_of(exc) or 0)}): kioskd's user must "
                "be in a SystemGroup of cups-files.conf (lpadmin in the image) and use the local socket"
            )
            log.warning("printer %s: %s", self.opts.queue, self._create_note)
            return missing
        deadline = clock.monotonic() + QUEUE_READY_TIMEOUT
        while not await self._call(self._queue_ready):
            if clock.monotonic() >= deadline:
                # cupsd's thread could not make a PPD of the printer's answers: a half-made queue would stay stopped
                # for ever, so it goes, and the next try starts afresh.
                with contextlib.suppress(RuntimeError, cups.HTTPError, cups.IPPError):
                    await self._call(self._delete_queue)
                self._create_note = (
                    f"CUPS could not build an IPP Everywhere queue for {_shown_uri(uri)} in {QUEUE_READY_TIMEOUT:g} s"
                )
                log.warning("printer %s: %s", self.opts.queue, self._create_note)
                return missing
            await clock.sleep(0.2)
        self._created = _Created(uri, answer.model, answer.formats)
        self._create_note = ""
        if answer.formats:
            self._formats[uri] = answer.formats
        log.info(
            "printer %s: queue created with IPP Everywhere for %s (%s; prints %s)",
            self.opts.queue,
            _shown_uri(uri),
            answer.model or "model unknown",
            ", ".join(answer.formats) or "formats unknown",
        )
        return await self._call(self._poll_cups)

    def _device_wanted(self) -> str:
        if self.opts.device == "ipp-usb":
            first, last = self.opts.ipp_usb_ports
            return f"ipp-usb's ports {first}-{last} on loopback"
        return _shown_uri(self.opts.device or "")

    def _candidates(self) -> list[str]:
        if self.opts.device == "ipp-usb":
            first, last = self.opts.ipp_usb_ports
            return [f"ipp://localhost:{port}/ipp/print" for port in range(first, last + 1)]
        return [self.opts.device] if self.opts.device else []

    async def _find_device(self) -> tuple[str, DeviceStatus] | None:
        """The first candidate that answers as an IPP printer, with what it said of itself."""
        assert self._asker is not None
        for uri in self._candidates():
            try:
                answer = await self._asker.status(uri)
            except Unreachable:
                continue
            if answer is not None:
                return uri, answer
        return None

    async def _document_format(self) -> str:
        """How a document reaches CUPS: raw (byte for byte) for a printer that prints PDF, else typed by CUPS and
        converted by its filters (``convert``)."""
        if self.opts.convert != "auto":
            return str(cups.CUPS_FORMAT_AUTO if self.opts.convert else cups.CUPS_FORMAT_RAW)
        return str(cups.CUPS_FORMAT_RAW if PDF in await self._printer_formats() else cups.CUPS_FORMAT_AUTO)

    async def _printer_formats(self) -> tuple[str, ...]:
        """What the queue's printer says it prints (document-format-supported), asked once per printer; empty when
        it cannot be asked (not an ipp:// printer, or no answer now)."""
        uri = self._device_uri or self._view.device_uri
        if uri in self._formats or http_url(uri) is None or self._asker is None:
            return self._formats.get(uri, ())
        try:
            answer = await self._asker.status(uri, within=min(self.opts.offline_after, FIND_TIMEOUT))
        except Unreachable:
            return ()
        if answer is not None and answer.formats:
            self._formats[uri] = answer.formats
        return self._formats.get(uri, ())

    async def _queue_diagnosis(self) -> Diagnosis:
        view, name = self._view, "print_queue"
        if not view.reachable:
            return Diagnosis(name, "fail", "the CUPS server does not answer", "doctor.printer.no_queue")
        if not view.found:
            detail = self._create_note or f"CUPS has no queue {self.opts.queue!r} and the profile names no device"
            return Diagnosis(name, "fail", detail, "doctor.printer.no_queue")
        formats = await self._printer_formats()
        model = (self._device.model if self._device is not None else "") or view.model
        how = "created by kioskd (IPP Everywhere)" if self._created is not None else "set up beforehand"
        if self.opts.convert is True or (self.opts.convert == "auto" and PDF not in formats):
            sending = "documents converted by CUPS's filters"
        else:
            sending = "PDF sent as is"
        state = self._state.status + (f" ({', '.join(self._state.reasons)})" if self._state.reasons else "")
        detail = (
            f"queue {self.opts.queue} {how}, {_shown_uri(view.device_uri)}: {model or 'model unknown'}; prints "
            f"{', '.join(formats) or 'formats unknown'}; {sending}; {state}"
        )
        verdict: Verdict = "ok" if self._state.status in ("idle", "printing") else "fail"
        return Diagnosis(name, verdict, detail, "" if verdict == "ok" else "doctor.printer.no_queue")

    def _printer_state(self, view: _QueueView, device: DeviceStatus | None, device_down: bool) -> PrinterState:
        name = view.model or self._state.name or self.opts.queue
        if not view.reachable or not view.found:
            return PrinterState(present=False, name=name, status="unavailable", reasons=("offline",))
        if device_down:
            device = None  # what it said before it went silent no longer holds
        reasons = view.reasons + (_reasons(device.reasons) if device is not None else ())
        if device_down:
            reasons += ("offline",)
        reasons = tuple(dict.fromkeys(reasons))
        states = {view.state, device.state if device is not None else 0}
        status: PrinterStatus
        if device_down:
            status = "unavailable"
        elif 5 in states:
            status = "stopped"
        elif 4 in states:
            status = "printing"
        else:
            status = "idle"
        return PrinterState(present=not device_down, name=name, status=status, reasons=reasons)

    def _publish(self, state: PrinterState) -> None:
        before = self._state
        if state == before:
            return
        self._state = state
        if state.status != before.status:
            log.info("printer %s: %s (%s)", self.opts.queue, state.status, ", ".join(state.reasons) or "no reason")
        self.ctx.emit(PrinterChanged(state))
        for reason in state.reasons:
            if reason in FAULT_REASONS and reason not in before.reasons:
                self.ctx.emit(DeviceFault("printer", f"printer.{reason}"))
        for reason in before.reasons:
            if reason in FAULT_REASONS and reason not in state.reasons:
                self.ctx.emit(DeviceFault("printer", f"printer.{reason}", cleared=True))

    # ------------------------------------------------------------------------------------------- worker: poll
    def _poll_cups(self) -> _QueueView:
        try:
            conn = self._connection()
            # Events before the queue's reasons: a jam reported at the end of a job is then in the reasons when
            # that job's end is read (see _apply_event).
            events = self._job_refusal_logged(self._events, conn)
            attrs = conn.getPrinterAttributes(self.opts.queue, requested_attributes=QUEUE_ATTRIBUTES)
            reasons = _reasons(attrs.get("printer-state-reasons", ()))
            if events is not None:
                self._job_refusal_logged(self._follow_jobs, conn, events, "media-jam" in reasons)
        except _Unreachable:
            return self._unreachable()
        except (RuntimeError, cups.HTTPError, cups.IPPError) as exc:
            if _disconnected(exc):
                self._drop()
                return self._unreachable()
            if _status_of(exc) == cups.IPP_NOT_FOUND:
                if not self._unreachable_logged:
                    log.warning("printer: CUPS has no queue %r (lpstat -p)", self.opts.queue)
                    self._unreachable_logged = True
                return _QueueView(reachable=True, found=False)
            raise
        if self._unreachable_logged:
            log.info("printer %s: CUPS answers again", self.opts.queue)
            self._unreachable_logged = False
        return _QueueView(
            reachable=True,
            found=True,
            state=int(attrs.get("printer-state", 3)),
            reasons=reasons,
            model=str(attrs.get("printer-make-and-model", "")),
            device_uri=str(attrs.get("device-uri", "")),
        )

    def _job_refusal_logged(self, step: Callable[..., T], *args: Any) -> T | None:
        """A step of following the jobs; CUPS refusing it (not a lost server, not a missing queue) leaves the
        queue's state valid: logged once, and ``None``."""
        try:
            result = step(*args)
        except cups.IPPError as exc:
            if _disconnected(exc) or _status_of(exc) == cups.IPP_NOT_FOUND:
                raise
            trouble = cups.ippErrorString(_status_of(exc) or 0)
            if trouble != self._job_trouble:
                log.warning("printer %s: CUPS does not report jobs (%s)", self.opts.queue, trouble)
                self._job_trouble = trouble
            self._reconcile = True
            return None
        self._job_trouble = None
        return result

    def _unreachable(self) -> _QueueView:
        if not self._unreachable_logged:
            log.warning("printer %s: the CUPS server does not answer", self.opts.queue)
            self._unreachable_logged = True
        return _QueueView(reachable=False)

    def _add_queue(self, uri: str) -> None:
        """Add-Printer with IPP Everywhere: cupsd asks the printer and builds the PPD on a thread of its own."""
        self._connection().addPrinter(self.opts.queue, device=uri, ppdname="everywhere", info=self.opts.queue)

    def _queue_ready(self) -> bool:
        """Whether cupsd finished the queue: its PPD built (no longer the raw stand-in), accepting, not stopped."""
        attrs = self._connection().getPrinterAttributes(
            self.opts.queue,
            requested_attributes=["printer-state", "printer-is-accepting-jobs", "printer-make-and-model"],
        )
        return (
            bool(attrs.get("printer-is-accepting-jobs"))
            and int(attrs.get("printer-state", 5)) != 5
            and str(attrs.get("printer-make-and-model", RAW_QUEUE_MODEL)) != RAW_QUEUE_MODEL
        )

    def _delete_queue(self) -> None:
        self._connection().deletePrinter(self.opts.queue)

    def _subscribe(self, conn: Any) -> int:
        """The notification subscription for the queue's jobs, created or renewed as needed."""
        now = self.ctx.clock.monotonic()
        if self._subscription is None:
            if self._stale_subscription is not None:
                with contextlib.suppress(cups.IPPError):
                    conn.cancelSubscription(self._stale_subscription)
                self._stale_subscription = None
            self._subscription = int(
                conn.createSubscription(
                    f"ipp://localhost/printers/{self.opts.queue}",
                    events=["job-state-changed"],  # created, stopped and completed included
                    lease_duration=LEASE,
                )
            )
            self._next_event = 1
            self._renew_at = now + LEASE / 2
            self._reconcile = True
        elif now >= self._renew_at:
            conn.renewSubscription(self._subscription, lease_duration=LEASE)
            self._renew_at = now + LEASE / 2
        return self._subscription

    def _events(self, conn: Any) -> list[Mapping[str, Any]]:
        """The job events since the last poll, oldest first."""
        subscription = self._subscribe(conn)
        try:
            answer = conn.getNotifications([subscription], [self._next_event])
        except cups.IPPError as exc:
            if _status_of(exc) not in GONE:
                raise
            self._subscription = None  # expired, or cupsd lost it: a new one, and a look at the listing
            answer = conn.getNotifications([self._subscribe(conn)], [self._next_event])
        events = [e for e in answer.get("events", ()) if int(e.get("notify-sequence-number", 0)) >= self._next_event]
        if events:
            if int(events[0]["notify-sequence-number"]) > self._next_event:
                self._reconcile = True  # CUPS dropped events (MaxEvents) before we read them
            self._next_event = int(events[-1]["notify-sequence-number"]) + 1
        return events

    def _listing(self, conn: Any, which: str) -> Mapping[int, Mapping[str, Any]] | None:
        """CUPS's job list (``which``: not-completed or all); ``None`` when CUPS will not list jobs to kioskd (a
        TCP connection it cannot authenticate, with the van's policy)."""
        try:
            listing: Mapping[int, Mapping[str, Any]] = conn.getJobs(
                which_jobs=which, requested_attributes=JOB_ATTRIBUTES
            )
        except cups.IPPError as exc:
            if _status_of(exc) not in REFUSED_LISTING:
                raise
            if not self._listing_refused:
                log.warning("printer: CUPS does not let kioskd list jobs on this connection (use the local socket)")
                self._listing_refused = True
            return None
        self._listing_refused = False
        return listing

    def _follow_jobs(self, conn: Any, events: list[Mapping[str, Any]], jammed: bool) -> None:
        for event in events:
            self._apply_event(conn, event, jammed)
        listing = self._listing(conn, "not-completed") or {}
        for job_id, attrs in listing.items():
            tracked = self._jobs.get(job_id)
            if tracked is None:
                if job_id not in self._gone:
                    self._discover(job_id, self._title(conn, job_id, attrs), attrs)
                continue
            tracked.unseen = 0
            if self._reconcile:
                self._update(job_id, tracked, attrs)
        if not self._listing_refused:
            self._reconcile = False
            for job_id, tracked in list(self._jobs.items()):
                if tracked.job.state in JOB_FINISHED or job_id in listing:
                    continue
                tracked.unseen += 1
                # Twice: a job that finished between the event pull and the listing has its event next time.
                if tracked.unseen >= 2:
                    self._resolve(conn, job_id, tracked)
        self._busy = any(t.job.state not in JOB_FINISHED for t in self._jobs.values())

    def _apply_event(self, conn: Any, event: Mapping[str, Any], jammed: bool) -> None:
        job_id = event.get("notify-job-id")
        if not isinstance(job_id, int):
            return
        if jammed and event.get("job-state") == cups.IPP_JOB_COMPLETED:
            # CUPS's ipp backend may report as completed a job the printer aborted on a jam: its watching thread
            # and its main loop race to read the printer's job, and only the former says "canceled at printer".
            # A job does not end well on a printer that is jammed as it ends.
            event = {**event, "job-state": cups.IPP_JOB_ABORTED, "job-state-reasons": ["media-jam"]}
        tracked = self._jobs.get(job_id)
        if tracked is None:
            if job_id not in self._gone:
                # An event without the title (a CUPS that withholds it there too) must not make a job of kioskd's
                # from an earlier run pass for the session app's: ask for the job's own.
                title = event["job-name"] if "job-name" in event else self._title(conn, job_id, {})
                self._discover(job_id, title, event)
        elif event.get("notify-subscribed-event") != "job-created":
            # Our own jobs are created held until their document arrives: already reported pending.
            self._update(job_id, tracked, event)

    def _title(self, conn: Any, job_id: int, attrs: Mapping[str, Any]) -> object:
        """A listed job's title; ``None`` when CUPS withholds it (a caller it could not authenticate).

        Get-Jobs sometimes leaves the title out of a finished job whose attributes cupsd has unloaded (a server
        that keeps history), even for its owner; asking for that job alone loads them."""
        if "job-name" in attrs:
            return attrs["job-name"]
        tracked = self._jobs.get(job_id)
        if tracked is not None:
            return tracked.job.title
        try:
            return conn.getJobAttributes(job_id, requested_attributes=["job-id", "job-name"]).get("job-name")
        except cups.IPPError as exc:
            if _status_of(exc) in GONE | REFUSED_LISTING:
                return None
            raise

    def _discover(self, job_id: int, title: object, attrs: Mapping[str, Any]) -> None:
        """A job this backend did not submit: kioskd's own from an earlier run (known by its title), or a foreign
        one, which the open session adopts under an anonymous title so that it is counted, waited for at the wipe
        and purged. A job whose title CUPS withholds is taken for foreign too: purged by the next wipe rather than
        left behind unseen."""
        if job_id in self._gone:
            return
        session = _session_of(title)
        foreign = session is None
        if session is None:
            session = self._current_session or ""
            title = _app_title(session, job_id)
            log.info("session %s: print job %d from the session app", session or "(none)", job_id)
        tracked = _Tracked(PrintJob(job_id, session, str(title), "pending"), foreign=foreign)
        self._jobs[job_id] = tracked
        self._update(job_id, tracked, attrs, force=True)

    def _update(self, job_id: int, tracked: _Tracked, attrs: Mapping[str, Any], force: bool = False) -> None:
        if tracked.job.state in JOB_FINISHED:
            return  # how a job ended is final: a late or repeated event must not reopen it
        value = attrs.get("job-state")
        state = JOB_STATES.get(value) if isinstance(value, int) else None
        if state is None:
            return
        reasons = _reasons(attrs.get("job-state-reasons", ()))
        if state == "cancelled" and job_id not in self._cancelling:
            # CUPS's ipp backend reports a job the printer aborted (a jam) as cancelled "at printer". Only this
            # backend cancels the station's jobs, so a cancellation it did not ask for is an abort to the agent:
            # the paper did not come out.
            state = "aborted"
            reasons = (*(r for r in reasons if r != "job-canceled-by-user"), "aborted-by-system")
        job = replace(tracked.job, state=state, reasons=reasons)
        if force:
            tracked.job = job
            self.ctx.emit(JobStateChanged(job))
        else:
            self._emit_job(tracked, job)

    def _resolve(self, conn: Any, job_id: int, tracked: _Tracked) -> None:
        """An unfinished job CUPS no longer lists and no event explained (events lost while CUPS restarted)."""
        try:
            attrs = conn.getJobAttributes(job_id, requested_attributes=JOB_ATTRIBUTES)
        except cups.IPPError as exc:
            if _status_of(exc) not in GONE:
                raise
            # Gone without a trace (the van keeps no history). Whether it printed is unknown: saying aborted makes
            # the agent check the tray rather than tell the citizen it printed.
            self._emit_job(tracked, replace(tracked.job, state="aborted", reasons=("job-state-unknown",)))
            return
        self._update(job_id, tracked, attrs)

    # ------------------------------------------------------------------------------------------- worker: commands
    def _submit(self, document: Path, title: str, session: str, fmt: str) -> int:
        try:
            source = open(document, "rb")  # noqa: SIM115 (closed below, after the job is created)
        except OSError as exc:
            raise DeviceError(
                f"the document cannot be read ({exc.strerror})", where="printer", key="printer.document-unreadable"
            ) from None
        with source:
            try:
                conn = self._connection()
                self._subscribe(conn)  # before the job, so that its end cannot happen unseen
                job_id = int(conn.createJob(self.opts.queue, title, dict(self.opts.job_options)))
            except (_Unreachable, RuntimeError, cups.HTTPError, cups.IPPError) as exc:
                raise self._command_error(exc, "submit") from None
            try:
                self._send(conn, job_id, title, source, fmt)
            except BaseException as exc:
                # A created job without its document would wait forever (held): take it back.
                with contextlib.suppress(RuntimeError, cups.HTTPError, cups.IPPError):
                    conn.cancelJob(job_id, purge_job=True)
                if isinstance(exc, OSError):
                    raise DeviceError(
                        f"the document cannot be read ({exc.strerror})",
                        where="printer",
                        key="printer.document-unreadable",
                    ) from None
                if isinstance(exc, RuntimeError | cups.HTTPError | cups.IPPError):
                    raise self._command_error(exc, "submit") from None
                raise
        tracked = _Tracked(PrintJob(job_id, session, title, "pending"))
        self._jobs[job_id] = tracked
        self._busy = True
        self.ctx.emit(JobStateChanged(tracked.job))
        log.info("session %s: print job %d submitted", session, job_id)
        return job_id

    def _send(self, conn: Any, job_id: int, title: str, source: Any, fmt: str) -> None:
        # The document is named after the job's title: libcups's printFile would send the file's own name.
        conn.startDocument(self.opts.queue, job_id, title, fmt, 1)
        while chunk := source.read(CHUNK):
            if conn.writeRequestData(chunk, len(chunk)) != HTTP_CONTINUE:
                raise cups.HTTPError(cups.HTTP_ERROR)
        status = conn.finishDocument(self.opts.queue)
        if status >= 0x0100:  # IPP success statuses are below 0x0100
            raise cups.IPPError(status, cups.ippErrorString(status))

    def _command_error(self, exc: BaseException, what: str) -> DeviceError:
        if isinstance(exc, _Unreachable) or _disconnected(exc):
            self._drop()
            return DeviceError(
                "the CUPS server does not answer",
                where="printer",
                action="check that cups runs (systemctl status cups)",
                key="printer.offline",
            )
        status = _status_of(exc)
        detail = cups.ippErrorString(status) if status is not None else type(exc).__name__
        return DeviceError(f"CUPS refused to {what} ({detail})", where="printer", key="printer.refused")

    def _session_jobs(self, session: str) -> tuple[PrintJob, ...]:
        # The session app's last print can be younger than the watch's last idle poll, and the wipe's grace must
        # wait for it: look at CUPS's news first. The queue's state read here is left to the watch to publish.
        try:
            self._poll_cups()
        except Exception:  # the watch logs what goes wrong; the jobs as last seen are still the best answer
            self._drop()
        return tuple(t.job for _, t in sorted(self._jobs.items()) if t.job.session == session)

    def _unfinished_ids(self, conn: Any, session: str) -> set[int]:
        """The session's unfinished jobs: the ones CUPS lists under its titles, and the ones this backend tracks,
        after it adopted the untracked ones CUPS lists (the session app's latest print, an earlier run's jobs)."""
        ids: set[int] = set()
        for job_id, attrs in (self._listing(conn, "not-completed") or {}).items():
            if job_id in self._jobs:
                continue
            title = self._title(conn, job_id, attrs)
            if _session_of(title) == session:
                ids.add(job_id)  # also one purged (so never tracked again) that CUPS still lists
            self._discover(job_id, title, attrs)
        return ids | {job_id for job_id, t in self._jobs.items() if t.job.session == session}

    def _cancel(self, session: str) -> None:
        cancelled = 0
        try:
            conn = self._connection()
            ids = self._unfinished_ids(conn, session)
            for job_id in sorted(ids):
                tracked = self._jobs.get(job_id)
                if tracked is not None and tracked.job.state in JOB_FINISHED:
                    continue
                cancelled += 1
                self._cancelling.add(job_id)
                try:
                    conn.cancelJob(job_id)
                except cups.IPPError as exc:
                    if _status_of(exc) not in GONE:
                        raise
                if tracked is not None:
                    # CUPS cancels at once (it stops the job's processes itself); its event may not come if the
                    # van keeps no history, so the state is set here.
                    self._emit_job(tracked, replace(tracked.job, state="cancelled", reasons=("job-canceled-by-user",)))
        except (_Unreachable, RuntimeError, cups.HTTPError, cups.IPPError) as exc:
            raise self._command_error(exc, "cancel") from None
        if cancelled:
            log.info("session %s: %d print job(s) cancelled", session, cancelled)

    def _purge(self, session: str) -> int:
        """One purge pass over the session's jobs and every foreign job; returns how many of them CUPS still lists
        or still has files of."""
        self._cancel(session)
        refused: BaseException | None = None
        try:
            conn = self._connection()
            # Only what kioskd submitted for another session is left alone. A foreign job goes whoever adopted it:
            # a session app's print has no business outliving any wipe.
            others = self._other_sessions(session)
            ids = (set(self._jobs) - others) | (self._purged.get(session, set()) - others)
            for job_id, attrs in (self._listing(conn, "all") or {}).items():
                # Untracked: a foreign job this backend missed (a title CUPS withholds counts as one), kioskd's own
                # from an earlier run, or one a pass before purged that CUPS still lists.
                if job_id in ids or job_id in others:
                    continue
                if _session_of(self._title(conn, job_id, attrs)) in (session, None):
                    ids.add(job_id)
            purged: set[int] = set()
            for job_id in sorted(ids):
                try:
                    conn.cancelJob(job_id, purge_job=True)
                except cups.IPPError as exc:
                    if _status_of(exc) not in GONE:
                        if _disconnected(exc):
                            raise
                        refused = refused or exc  # the other jobs are still purged; the wipe hears of it below
                        continue
                purged.add(job_id)
            for job_id in purged:
                tracked = self._jobs.pop(job_id, None)
                if tracked is not None and tracked.job.state not in JOB_FINISHED:
                    # A foreign job another session adopted (or nobody): the station hears that it ended here.
                    self.ctx.emit(
                        JobStateChanged(replace(tracked.job, state="cancelled", reasons=("job-canceled-by-user",)))
                    )
                self._cancelling.discard(job_id)
            self._purged.setdefault(session, set()).update(purged)
            self._gone |= purged
            listed = set(self._listing(conn, "all") or ()) & ids  # unlisted: verify_purged says so
        except (_Unreachable, RuntimeError, cups.HTTPError, cups.IPPError) as exc:
            raise self._command_error(exc, "purge") from None
        self._busy = any(t.job.state not in JOB_FINISHED for t in self._jobs.values())
        log.info("session %s: %d print job(s) purged", session, len(purged))
        if refused is not None:
            raise self._command_error(refused, "purge")
        try:
            documents, controls = self._spool_files(ids)
        except OSError:
            documents = controls = 0  # verify_purged reports a spool it cannot check
        return len(listed) + documents + controls

    def _other_sessions(self, session: str) -> set[int]:
        """The jobs kioskd submitted for other sessions (this run or, known by their titles, an earlier one)."""
        return {job_id for job_id, t in self._jobs.items() if t.job.session != session and not t.foreign}

    def _verify(self, session: str) -> tuple[str, ...]:
        problems: list[str] = []
        others = self._other_sessions(session)
        known = (set(self._jobs) - others) | (self._purged.get(session, set()) - others)
        foreign_known = {job_id for job_id, t in self._jobs.items() if t.foreign}
        try:
            conn = self._connection()
            listing = self._listing(conn, "all")
            if listing is None:
                return ("CUPS does not let kioskd list its jobs: they cannot be checked",)
            titles = {i: self._title(conn, i, a) for i, a in listing.items() if i not in others | known}
        except (_Unreachable, RuntimeError, cups.HTTPError, cups.IPPError) as exc:
            if isinstance(exc, _Unreachable) or _disconnected(exc):
                self._drop()
                return ("the CUPS server does not answer: its jobs cannot be checked",)
            raise
        # Counts only: the title of the session app's job may name the citizen.
        foreign = (set(listing) & foreign_known) | {
            i for i, title in titles.items() if title is not None and _session_of(title) is None
        }
        listed = ((set(listing) & known) - foreign) | {i for i, t in titles.items() if _session_of(t) == session}
        hidden = {i for i, title in titles.items() if title is None}
        if listed:
            problems.append(f"{len(listed)} print job(s) of the session still listed by CUPS")
        if foreign:
            problems.append(f"{len(foreign)} print job(s) of a session app still listed by CUPS")
        if hidden:
            problems.append(f"{len(hidden)} print job(s) whose title CUPS withholds: cannot tell whose they are")
        try:
            documents, controls = self._spool_files(known | listed | foreign | hidden)
        except OSError as exc:
            problems.append(f"the CUPS spool cannot be checked ({exc.strerror})")
        else:
            if documents:
                problems.append(f"{documents} document file(s) of the session or a session app in the CUPS spool")
            if controls:
                problems.append(f"{controls} control file(s) of the session or a session app in the CUPS spool")
        return tuple(problems)

    def _spool_files(self, ids: Iterable[int]) -> tuple[int, int]:
        """How many document (d<id>-NNN) and control (c<id>) files of these jobs are in the spool.

        Only names are tried, never listed: on a van /var/spool/cups is searchable, not readable, by group lp."""
        spool = self.opts.spool
        if spool is None:
            return 0, 0
        os.stat(spool)  # a missing spool cannot prove anything: the caller reports it
        documents = controls = 0
        for job_id in ids:
            controls += _exists(spool / f"c{job_id:05d}")
            number = 1
            while _exists(spool / f"d{job_id:05d}-{number:03d}"):
                documents += 1
                number += 1
        return documents, controls

    def _unsubscribe(self) -> None:
        if self._subscription is not None and self._conn is not None:
            with contextlib.suppress(RuntimeError, cups.HTTPError, cups.IPPError):
                self._conn.cancelSubscription(self._subscription)
        self._subscription = None
        self._conn = None


def privacy_check(cupsd_conf: Path) -> Diagnosis:
    """Whether ``cupsd_conf`` turns off both ``PreserveJobHistory`` and ``PreserveJobFiles``."""
    try:
        text = cupsd_conf.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return Diagnosis("cups", "fail", f"{cupsd_conf}: {exc.strerror}", "doctor.cups.privacy")
    settings = {
        m.group(1).lower(): m.group(2).strip().lower()
        for m in re.finditer(r"(?im)^\s*(PreserveJobHistory|PreserveJobFiles)\s+(\S+)", text)
    }
    # CUPS's defaults keep both: the history (titles, users) forever and the files for a day
    kept = [name for name in ("preservejobhistory", "preservejobfiles") if settings.get(name) != "no"]
    if kept:
        return Diagnosis("cups", "fail", f"{cupsd_conf}: keeps {', '.join(kept)}", "doctor.cups.privacy")
    return Diagnosis("cups", "ok", f"{cupsd_conf}: no job history, no job files kept")
