"""A SANE scanner behind the kioskd ``Scanner`` contract (python-sane; driverless eSCL scanners through sane-airscan).

libsane runs in a process of its own (drivers/scanner/sane_child.py says why: its reader threads can hang
``sane_cancel`` for good), a fresh one for each job: every call to it has a deadline, and a libsane that misses one
is killed. One worker thread talks to that process and runs the
jobs one after the other; a udev monitor on its own thread follows the scanner being plugged and unplugged. It
imports no policy, logs no pixel, and keeps no page once a job has returned it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pyudev
from pydantic import Field

from drivers.scanner.sane_child import OptionTable
from kioskd.hal import (
    DeviceError,
    DeviceFault,
    DriverContext,
    DriverOptions,
    RawPage,
    ScanFinished,
    ScanMode,
    ScannerChanged,
    ScannerState,
    ScanRequest,
    ScanResult,
    ScanSource,
)

log = logging.getLogger(__name__)

# libsane's sane_strstatus() texts, which python-sane raises as the error's message (they are never translated).
SANE_FAULTS: dict[str, str] = {
    "Document feeder jammed": "jammed",
    "Document feeder out of documents": "no-docs",
    "Scanner cover is open": "cover-open",
    "Device busy": "busy",
    "Error during device I/O": "io-error",
}
# sane_open() of a device name that is no longer there.
SANE_NO_SUCH_DEVICE = "Invalid argument"

# How backends name their sources and modes (genesys, epson2, airscan, fujitsu, test …), for the usual guess.
# Duplex is "ADF Duplex" (airscan, fujitsu, canon_dr, epsonds), "Duplex" (hpaio) or "ADF Front/Back"-style names;
# the plain feeder is the first feeder name that is not a duplex one ("ADF Front" on scanners that list both).
SOURCE_WORDS: dict[ScanSource, tuple[str, ...]] = {
    "flatbed": ("flatbed", "platen", "document table", "normal"),
    "adf": ("adf", "feeder", "automatic document"),
    "duplex": ("duplex", "front/back", "front & back", "both sides", "two-sided", "2-sided"),
}
MODE_WORDS: dict[ScanMode, tuple[str, ...]] = {"color": ("color", "colour"), "gray": ("gray", "grey")}


class SaneScannerOptions(DriverOptions):
    device: str | None = Field(None, min_length=1, description="SANE device name (`scanimage -L`); none: the first")
    resolution: int = Field(300, ge=50, le=1200, description="dpi set when the handle opens, before any job")
    mode: ScanMode = "color"
    sources: dict[ScanSource, str] = Field(
        default_factory=dict, description="this backend's names of the flatbed and the feeder, when guessed wrong"
    )
    modes: dict[ScanMode, str] = Field(default_factory=dict, description="this backend's names of colour and grey")
    sane_options: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="backend options (SANE names) set after every open"
    )
    udev_subsystem: str = Field("usb", min_length=1)
    udev_match: dict[str, str] = Field(
        default_factory=lambda: {"DEVTYPE": "usb_device", "libsane_matched": "yes"},
        description="udev properties that identify the scanner (SANE's udev rules set libsane_matched); "
        "empty: no hotplug, the scanner is present when SANE opens it (a network scanner)",
    )
    network_backends: list[str] = Field(
        default_factory=lambda: ["airscan", "escl", "net"],
        description="SANE backends whose devices udev never marks (eSCL over the network or through ipp-usb, "
        "saned): for them the presence is SANE's own device list, not udev",
    )
    call_timeout: float = Field(
        30.0,
        gt=0,
        le=600,
        description="seconds libsane may take to answer anything but a page (device list, open, an option, cancel, "
        "close); past it, its process is stopped and the scanner reads as not responding (io-error)",
    )
    start_timeout: float = Field(
        60.0, gt=0, le=600, description="seconds libsane may take to start a page (lamp warm-up, feeding), likewise"
    )
    page_timeout: float = Field(300.0, gt=0, le=3600, description="seconds libsane may take to read a page, likewise")


def fault_of(error: BaseException) -> str:
    """The catalogue suffix of a SANE error; anything without one of its own is an I/O error."""
    return SANE_FAULTS.get(str(error), "io-error")


def over_network(name: str, backends: list[str]) -> bool:
    """Whether a SANE device name (``backend:rest``) belongs to a backend that udev cannot see (``airscan:e0:…``)."""
    return name.split(":", 1)[0] in backends


class SaneError(Exception):
    """A SANE status from libsane's process: its text is sane_strstatus()'s (``SANE_FAULTS``)."""


class SaneGone(Exception):
    """libsane's process missed its deadline or ended: it is (to be) stopped, the next open starts another."""


class SaneProcess:
    """libsane's process (drivers/scanner/sane_child.py) and the calls to it, each with a deadline. Used from the
    driver's worker thread only."""

    def __init__(self, within: float) -> None:
        ours, theirs = socket.socketpair()
        try:
            # -I: not the working directory's modules, nor PYTHON* variables, only the installed kioskd.
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-m", "drivers.scanner.sane_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        try:
            status, why = self._answer("start", within)
        except SaneGone as exc:
            status, why = "missing", str(exc)
        if status != "ready":
            self.stop(0)
            raise DeviceError(
                f"libsane does not start: {why}",
                where="scanner.sane",
                action="check that libsane1 and python-sane (python3-sane) are installed",
            )

    def call(self, op: str, *args: object, within: float) -> Any:
        """``op``'s answer; SaneError for a SANE status, SaneGone past ``within`` seconds or when the process
        ended, RuntimeError for anything else that failed in it."""
        try:
            self.conn.send((op, args))
        except OSError as exc:
            raise SaneGone(f"libsane's process is gone ({op}: {exc})") from None
        status, value = self._answer(op, within)
        if status == "sane":
            raise SaneError(value)
        if status != "ok":
            raise RuntimeError(value)
        return value

    def _answer(self, op: str, within: float) -> tuple[str, Any]:
        try:
            if self.conn.poll(within):
                answer: tuple[str, Any] = self.conn.recv()
                return answer
        except (EOFError, OSError):
            raise SaneGone(f"libsane's process ended during {op} (exit status {self.process.poll()})") from None
        raise SaneGone(f"libsane did not answer {op} within {within:g} s")

    def stop(self, within: float) -> None:
        """Close the handle (SANE's cancel, then close) within ``within`` seconds and let the process end; kill it
        when it does not."""
        stuck = within <= 0
        if not stuck:
            try:
                self.call("close", within=within)
            except SaneGone as exc:
                log.warning("scanner: %s; its process is killed", exc)
                stuck = True
            except (SaneError, RuntimeError) as exc:
                log.info("scanner: %s while closing the handle", exc)
        self.conn.close()
        if not stuck:
            try:
                self.process.wait(timeout=within)
                return
            except subprocess.TimeoutExpired:
                log.warning("scanner: libsane's process did not end after its handle closed; it is killed")
        self.process.kill()
        self.process.wait()


def _named(choices: object, wanted: str, words: tuple[str, ...], unless: tuple[str, ...] = ()) -> str | None:
    """The backend's name for a source or mode: the configured one, else the first choice containing a usual word
    (and none of the words ``unless``)."""
    names = [str(choice) for choice in choices] if isinstance(choices, list) else []
    if wanted:
        return wanted if not names or wanted in names else None
    for word in words:
        for name in names:
            lowered = name.lower()
            if word in lowered and not any(other in lowered for other in unless):
                return name
    return None


def source_name(choices: object, source: ScanSource, configured: str = "") -> str | None:
    """This backend's name of ``source`` among its ``source`` option's choices (None: it has no such source)."""
    unless = SOURCE_WORDS["duplex"] if source == "adf" else ()
    return _named(choices, configured, SOURCE_WORDS[source], unless)


def _nearest_resolution(constraint: object, wanted: int) -> int:
    """The supported resolution closest to ``wanted`` (a range with a step, or a list of values)."""
    if isinstance(constraint, list) and constraint:
        return int(min((float(value) for value in constraint), key=lambda value: abs(value - wanted)))
    if isinstance(constraint, tuple) and len(constraint) == 3:
        low, high, step = (float(value) for value in constraint)
        value = min(max(float(wanted), low), high)
        if step > 0:
            value = low + round((value - low) / step) * step
        return round(value)
    return wanted


def _page(data: bytes | bytearray, width: int, height: int, samples: int, sample_size: int, dpi: int) -> RawPage:
    """A SANE frame as 8-bit pixels: H×W grey or H×W×3 RGB."""
    pixels: npt.NDArray[np.uint8]
    if sample_size == 2:
        # 16-bit samples in the machine's byte order (python-sane's numpy layout): keep the high byte.
        pixels = (np.frombuffer(data, np.uint16) >> 8).astype(np.uint8)
    else:
        pixels = np.frombuffer(data, np.uint8)
    pixels = pixels.reshape(height, width, samples)
    if samples == 1:
        return RawPage(np.ascontiguousarray(pixels[:, :, 0]), dpi, "gray")
    return RawPage(np.ascontiguousarray(pixels[:, :, :3]), dpi, "color")


class SaneScanner:
    """The ``scanner.sane`` backend. Every method named ``_w_…`` runs on the worker thread, and only there."""

    options_model: ClassVar[type[SaneScannerOptions]] = SaneScannerOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.opts = ctx.parse_options(self.options_model)
        # Called on the worker thread before each page is read, with the page number (from 1) and the number of
        # the open handle (1 for the first open, then one more at each reopen); the backend options it returns are
        # set for that page (the tests make SANE's test backend jam at a chosen page this way).
        self.before_page: Callable[[int, int], dict[str, object] | None] | None = None
        self._lock = threading.Lock()
        self._state = ScannerState()
        self._plugged: set[str] = set()  # udev sys paths of the matching devices present now
        self._worker: ThreadPoolExecutor | None = None
        self._observer: Any = None
        # libsane's process and its open handle's options (None: no handle): touched on the worker thread only.
        self._sane: SaneProcess | None = None
        self._options: OptionTable | None = None
        self._opened = 0
        self._jobs = itertools.count(1)
        # A device udev cannot see (sane-airscan's eSCL devices carry no libsane_matched): SANE's list decides.
        self._network = self.opts.device is not None and over_network(self.opts.device, self.opts.network_backends)

    # ------------------------------------------------------------------------------------------- contract
    @property
    def state(self) -> ScannerState:
        return self._state

    async def start(self) -> None:
        if self._worker is not None:
            return
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kioskd-sane")
        try:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._w_start)
        except BaseException:
            worker, self._worker = self._worker, None
            worker.shutdown(wait=False)
            raise

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        loop = asyncio.get_running_loop()
        observer, self._observer = self._observer, None
        if observer is not None:
            # stop() joins the monitor's thread: not on the event loop.
            await loop.run_in_executor(None, observer.stop)
        await loop.run_in_executor(worker, self._w_close_handle)
        worker.shutdown(wait=False)

    async def scan(self, request: ScanRequest) -> ScanResult:
        if self._worker is None:
            raise DeviceError("the scanner is not started", where="scanner.sane", action="start the station")
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._w_job, request)

    # ------------------------------------------------------------------------------------------- state
    def _publish(self, **changes: Any) -> None:
        with self._lock:
            state = replace(self._state, **changes)
            if state == self._state:
                return
            self._state = state
            # Emitting under the lock keeps the events in the order of the changes, from whichever thread.
            self.ctx.emit(ScannerChanged(state))

    def _watching(self) -> bool:
        return bool(self.opts.udev_match) and not self._network

    def _plugged_in(self) -> bool:
        """Whether the scanner is there as far as udev knows (always, without udev matching)."""
        with self._lock:
            return not self._watching() or bool(self._plugged)

    # ------------------------------------------------------------------------------------------- hotplug
    def _matches(self, device: Any) -> bool:
        properties = device.properties
        return all(properties.get(key) == value for key, value in self.opts.udev_match.items())

    def _w_watch(self) -> None:
        """Start the udev monitor, then list what is already plugged (in that order, so no plug is missed)."""
        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by(self.opts.udev_subsystem)
        self._observer = pyudev.MonitorObserver(monitor, callback=self._on_udev, name="kioskd-scanner-udev")
        self._observer.start()
        found = {d.sys_path for d in context.list_devices(subsystem=self.opts.udev_subsystem) if self._matches(d)}
        with self._lock:
            self._plugged |= found

    def _on_udev(self, device: Any) -> None:
        """On the monitor's thread: record the plug or unplug, publish it, and let the worker open or close."""
        action, path = device.action, device.sys_path
        with self._lock:
            before = bool(self._plugged)
            if action == "add" and self._matches(device):
                self._plugged.add(path)
            elif action == "remove":
                self._plugged.discard(path)
            after = bool(self._plugged)
        worker = self._worker
        if before == after or worker is None:
            return
        log.info("scanner %s", "plugged in" if after else "unplugged")
        if after:
            worker.submit(self._w_plugged)
        else:
            # Published at once, even while a job holds the worker: the job's read error then reads as "unplugged".
            self._publish(present=False, status="absent")
            worker.submit(self._w_close_handle)

    def _w_plugged(self) -> None:
        fault = self._w_open() if self._options is None else None
        self._w_settle(fault)

    # ------------------------------------------------------------------------------------------- handle
    def _w_start(self) -> None:
        lib = self._w_lib()  # a DeviceError when libsane cannot start at all
        if self._watching() and self.opts.device is None:
            # The first device SANE lists is the one opened: when it is a network one, udev has no say.
            try:
                devices = lib.call("devices", within=self.opts.call_timeout)
            except (SaneError, SaneGone, RuntimeError) as exc:
                log.warning("scanner: SANE's device list failed: %s", exc)
                self._w_forget(0)
                devices = []
            self._network = bool(devices) and over_network(str(devices[0][0]), self.opts.network_backends)
        if self._watching():
            self._w_watch()
        if not self._plugged_in():
            self._publish(present=False, status="absent", fault=None)
            return
        self._w_settle(self._w_open())

    def _w_settle(self, fault: str | None) -> None:
        """Publish the state after an open attempt (``fault``: why it failed) and clear a fault that is over."""
        before = self._state.fault
        if self._options is not None:
            self._publish(present=True, status="idle", fault=None)
            if before is not None:
                self.ctx.emit(DeviceFault("scanner", f"scanner.{before}", cleared=True))
        elif fault == "unplugged" or not self._plugged_in():
            self._publish(present=False, status="absent")
        elif fault is not None and fault != before:
            self._publish(present=True, status="fault", fault=fault)
            self.ctx.emit(DeviceFault("scanner", f"scanner.{fault}"))

    def _w_open(self) -> str | None:
        """Open the configured (or first) device and preset it; the fault suffix when that fails.

        ``device`` also matches as a prefix: a USB scanner's SANE name carries its bus address, which changes when
        it is plugged again (``genesys:libusb:001:007``), so a profile can name just the backend (``genesys``)."""
        wanted = self.opts.device
        name, label = wanted, wanted or ""
        try:
            lib = self._w_lib()
            devices = lib.call("devices", within=self.opts.call_timeout)
            for device, vendor, model, _kind in devices:
                if wanted is None or device == wanted or device.startswith(wanted):
                    name, label = device, f"{vendor} {model}"
                    break
            if name is None:
                self._w_forget(0)
                return "unplugged"
            # A configured name that is not listed may still open: network backends do not always list theirs.
            self._options = lib.call("open", name, within=self.opts.call_timeout)
            self._opened += 1
            presets: dict[str, object] = {
                **self.opts.sane_options,
                "mode": self._w_mode_name(self.opts.mode) or "",
                "resolution": _nearest_resolution(self._w_constraint("resolution"), self.opts.resolution),
            }
            for option, value in presets.items():
                try:
                    if not self._w_set(option, value):
                        log.warning("scanner %s: option %r is not settable on this backend", name, option)
                except SaneError as exc:
                    # A profile's bad value must not keep the scanner closed: the technician reads it in the journal.
                    log.warning("scanner %s: option %r = %r refused: %s", name, option, value, exc)
        except SaneError as exc:
            self._w_forget(0)
            if str(exc) == SANE_NO_SUCH_DEVICE:
                return "unplugged"
            log.warning("scanner %s cannot be opened: %s", name, exc)
            return fault_of(exc)
        except (SaneGone, DeviceError, RuntimeError) as exc:
            log.warning("scanner %s cannot be opened: %s", name, exc)
            self._w_forget(0)
            return "io-error"
        offered: tuple[ScanSource, ...] = ("flatbed", "adf", "duplex")
        sources = tuple(source for source in offered if self._w_source_name(source) is not None)
        with self._lock:
            # Published with the outcome of the open (idle), not as a state of its own.
            self._state = replace(self._state, name=label, sources=sources or ("flatbed",))
        log.info("scanner %s open (%s)", name, ", ".join(sources) or "flatbed")
        return None

    def _w_lib(self) -> SaneProcess:
        """libsane's process, started (and libsane initialised in it) when there is none."""
        if self._sane is None:
            process = SaneProcess(self.opts.call_timeout)
            try:
                process.call("init", within=self.opts.call_timeout)
            except (SaneError, SaneGone, RuntimeError) as exc:
                process.stop(0)
                raise DeviceError(
                    f"libsane does not start: {exc}", where="scanner.sane", action="check that libsane1 is installed"
                ) from None
            self._sane = process
        return self._sane

    def _w_forget(self, within: float) -> None:
        """End libsane's process (its handle closed within ``within`` seconds, else killed): the next open starts
        a fresh one."""
        process, self._sane, self._options = self._sane, None, None
        if process is not None:
            process.stop(within)

    def _w_close_handle(self) -> None:
        self._w_forget(self.opts.call_timeout)

    def _w_call(self, op: str, *args: object, within: float | None = None) -> Any:
        if self._sane is None:
            raise SaneGone(f"libsane's process is not running ({op})")
        return self._sane.call(op, *args, within=self.opts.call_timeout if within is None else within)

    def _w_constraint(self, option: str) -> object:
        entry = self._options.get(option.replace("-", "_")) if self._options is not None else None
        return None if entry is None else entry[0]

    def _w_set(self, option: str, value: object) -> bool:
        """Set a backend option when this backend has it active and settable; whether it was set."""
        key = option.replace("-", "_")
        entry = self._options.get(key) if self._options is not None else None
        if entry is None or value == "" or not entry[1] or not entry[2]:
            return False
        self._options = self._w_call("set", key, value)
        return True

    def _w_source_name(self, source: ScanSource) -> str | None:
        choices = self._w_constraint("source")
        if choices is None:
            # No source option: a flatbed-only scanner.
            return "" if source == "flatbed" else None
        return source_name(choices, source, self.opts.sources.get(source, ""))

    def _w_mode_name(self, mode: ScanMode) -> str | None:
        return _named(self._w_constraint("mode"), self.opts.modes.get(mode, ""), MODE_WORDS[mode])

    def _w_configure(self, request: ScanRequest) -> int:
        """Set source, mode, resolution and 8-bit depth for ``request``; the resolution actually asked."""
        source = self._w_source_name(request.source)
        if source is None:
            raise DeviceError(
                f"this scanner has no {request.source} source",
                where=f"scanner {self._state.name}",
                action="scan from a source listed in the scanner's state",
            )
        # Setting the source only when it changes: some backends reset their feeder or calibration on any write.
        if source and self._w_call("get", "source") != source:
            self._w_set("source", source)
        self._w_set("mode", self._w_mode_name(request.mode) or "")
        dpi = _nearest_resolution(self._w_constraint("resolution"), request.resolution)
        self._w_set("resolution", dpi)
        constraint = self._w_constraint("depth")
        if isinstance(constraint, list) and 8 in constraint:
            self._w_set("depth", 8)
        return dpi

    # ------------------------------------------------------------------------------------------- jobs
    def _w_job(self, request: ScanRequest) -> ScanResult:
        job = next(self._jobs)
        if not self._plugged_in():
            return self._w_end(job, [], "unplugged")
        if self._options is None:
            refused = self._w_open()
            if refused is not None:
                return self._w_end(job, [], refused)
        previous = self._state.fault
        self._publish(present=True, status="scanning", fault=None)
        if previous is not None:
            self.ctx.emit(DeviceFault("scanner", f"scanner.{previous}", cleared=True))
        stack = request.source in ("adf", "duplex") and request.multi
        # Each sane_start reads one side: a duplex sheet is two frames, front then back.
        sheet = 2 if request.source == "duplex" else 1
        pages: list[RawPage] = []
        fault: str | None = None
        try:
            dpi = self._w_configure(request)
            while True:
                if self.before_page is not None:
                    for option, value in (self.before_page(len(pages) + 1, self._opened) or {}).items():
                        self._w_set(option, value)
                self._w_call("start", within=self.opts.start_timeout)
                frame = self._w_call("read", within=self.opts.page_timeout)
                data, width, height, samples, sample_size = frame
                pages.append(_page(data, width, height, samples, sample_size, dpi))
                if not stack and len(pages) >= sheet:
                    break
        except SaneError as exc:
            fault = fault_of(exc)
            # The feeder running out after at least one sheet is the normal end of a stack, not a fault.
            if fault == "no-docs" and stack and pages:
                fault = None
        except SaneGone as exc:
            log.warning("scan job %d: %s; its process is killed", job, exc)
            self._w_forget(0)
            fault = "io-error"
        except DeviceError:
            self._w_cancel()
            self._publish(status="idle")
            raise
        except Exception:
            # Whatever else broke (a frame python-sane could not shape), the job must end and the handle be
            # renewed, or the scanner would stay "scanning" for good.
            log.exception("scan job %d failed", job)
            fault = "io-error"
        if fault is not None and not self._plugged_in():
            fault = "unplugged"
        # Every job ends its libsane: the handle cancelled and closed (its process killed past the deadline, the
        # hang sane_child.py tells of) and a fresh one opens the scanner for the next job, so that nothing a
        # reader thread's cancel may have broken outlives the job. It costs about 0.1 s per job here.
        self._w_close_handle()
        reopened = self._w_open() if self._plugged_in() else "unplugged"
        if fault is not None and reopened == "unplugged":
            fault = "unplugged"
        result = self._w_end(job, pages, fault)
        if fault is None and reopened is not None:
            self._w_settle(reopened)  # the scanner went away (or broke) just after a good job
        return result

    def _w_cancel(self) -> None:
        # SANE ends every job (and an ADF batch) with sane_cancel.
        try:
            if self._sane is not None:
                self._w_call("cancel")
        except (SaneError, RuntimeError) as exc:
            log.info("scanner: %s on cancel", exc)
        except SaneGone as exc:
            log.warning("scanner: %s; its process is killed, the next job opens a fresh one", exc)
            self._w_forget(0)

    def _w_end(self, job: int, pages: list[RawPage], fault: str | None) -> ScanResult:
        present = self._plugged_in() and fault != "unplugged"
        if fault is None:
            self._publish(present=True, status="idle", fault=None)
            self.ctx.emit(ScanFinished(job, len(pages)))
        else:
            log.warning("scan job %d stopped: %s after %d page(s)", job, fault, len(pages))
            self._publish(present=present, status="fault" if present else "absent", fault=fault)
            self.ctx.emit(DeviceFault("scanner", f"scanner.{fault}"))
        return ScanResult(tuple(pages), fault)
