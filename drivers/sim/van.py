"""The simulated van's physics and its fault verbs; the sim backends read and command it.

Energy is integrated on the injected clock at a fixed period (``tick`` in the power options), so an accelerated
clock plays a day on tour in seconds. Every change is recorded in ``history`` with its simulated time."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kioskd.hal import (
    JOB_FINISHED,
    AudioChanged,
    AudioState,
    ButtonChanged,
    ButtonPressed,
    ButtonState,
    CameraChanged,
    CameraState,
    DeviceFault,
    DeviceKind,
    DisplayLayout,
    DisplaysChanged,
    DisplaysState,
    DriverContext,
    Event,
    IgnitionChanged,
    JobState,
    JobStateChanged,
    LedPattern,
    ModemChanged,
    ModemState,
    Output,
    OutputConnected,
    OutputDisconnected,
    PowerChanged,
    PowerState,
    PrinterChanged,
    PrinterState,
    PrintJob,
    RawPage,
    ScanFinished,
    ScannerChanged,
    ScannerState,
    ScanRequest,
    ScanResult,
    ShoreChanged,
    SignalChanged,
    Technology,
)

A4_MM = (210.0, 297.0)


def rsrp_of(quality: int) -> float:
    """An LTE RSRP (dBm) for a signal quality (%): ModemManager's quality spans about -140 … -44 dBm."""
    return round(-140.0 + 0.96 * quality, 1)


@dataclass
class Battery:
    capacity_wh: float = 2400.0
    soc: float = 80.0
    base_load_w: float = 90.0  # PC, router, screens
    session_load_w: float = 60.0  # printer warm, scanner, citizen screen lit
    charger_w: float = 600.0  # on shore
    alternator_w: float = 400.0  # ignition on
    shore: bool = True
    ignition: bool = False
    load_w: float = 90.0


@dataclass
class SimJob:
    job: PrintJob
    spool: Path
    pages: int
    remaining: float  # seconds of printing left
    foreign: bool = False  # printed by the session app through the queue, under its own (maybe personal) title


@dataclass
class Verb:
    help: str
    run: Callable[[list[str]], Awaitable[str]]


@dataclass
class SimVan:
    """The whole van. Created once per daemon (``DriverContext.shared_model``) by the first sim backend."""

    ctx: DriverContext
    battery: Battery = field(default_factory=Battery)
    tick: float = 30.0
    started: set[DeviceKind] = field(default_factory=set)
    history: deque[tuple[float, str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))  # the latest
    power_ok: bool = True  # the battery monitor answers
    modem: ModemState = field(
        default_factory=lambda: ModemState(
            True, "home", "lte", 70, "Orange F", True, True, rsrp=rsrp_of(70), sim="ready"
        )
    )
    modem_hung: bool = False  # answers nothing until reset
    bearer_broken: bool = False  # the data link is up but nothing passes (a stale bearer): a reconnect fixes it
    clipboard: str = ""
    displays: DisplaysState = field(
        default_factory=lambda: DisplaysState(
            (Output("HDMI-1", "agent", True, 1920, 1080), Output("HDMI-2", "citizen", True, 1920, 1080)),
            mirrored=False,
            curtain=False,
            powered=False,
        )
    )
    scanner: ScannerState = field(
        default_factory=lambda: ScannerState(True, "Scanner simulé", "idle", None, ("flatbed", "adf", "duplex"))
    )
    adf_sheets: int = 10
    scan_jam_at: int | None = None  # page number (1-based) of the next job that jams
    cover_open: bool = False
    page_seconds: float = 4.0
    printer: PrinterState = field(default_factory=lambda: PrinterState(True, "Imprimante simulée", "idle", ()))
    paper: int = 250
    toner: int = 80
    page_print_seconds: float = 5.0
    purge_stuck: bool = False  # the queue refuses to purge (a wipe handler that fails)
    printer_session: str | None = None  # the session open now (foreign jobs belong to it)
    jobs: dict[int, SimJob] = field(default_factory=dict)
    job_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    scan_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    spool: Path = Path()
    button: ButtonState = field(default_factory=lambda: ButtonState(True, False, "off"))
    hold_time: float = 3.0
    audio: AudioState = field(default_factory=lambda: AudioState(True, "Haut-parleurs", "Micro", 60, False, True, 0))
    camera: CameraState = field(default_factory=lambda: CameraState(True, "Caméra simulée", False))
    _timer: Any = None
    _last_tick: float | None = None
    _printing: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, ctx: DriverContext) -> SimVan:
        van: SimVan = ctx.shared_model("sim.van", lambda: cls(ctx))
        van.spool = ctx.runtime_dir / "sim-printer-spool"
        ctx.shared_model("sim.simulation", lambda: VanSimulation(van))
        return van

    # ------------------------------------------------------------------------------------------- plumbing
    def emit(self, event: Event) -> None:
        self.ctx.emit(event)

    def record(self, what: str, value: Any) -> None:
        self.history.append((self.ctx.clock.monotonic(), what, value))

    def start(self, kind: DeviceKind) -> None:
        self.started.add(kind)
        if kind == "power" and self._timer is None:
            self._last_tick = self.ctx.clock.monotonic()
            self._schedule_tick()
        if kind == "printer":
            self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.publish(kind)

    def stop(self, kind: DeviceKind) -> None:
        self.started.discard(kind)
        if kind == "power" and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if kind == "printer" and self._printing is not None:
            self._printing.cancel()

    def publish(self, kind: DeviceKind) -> None:
        if kind not in self.started:
            return
        match kind:
            case "power":
                self.emit(PowerChanged(self.power_state()))
            case "modem":
                self.emit(ModemChanged(self.modem))
            case "displays":
                self.emit(DisplaysChanged(self.displays))
            case "scanner":
                self.emit(ScannerChanged(self.scanner))
            case "printer":
                self.emit(PrinterChanged(self.printer))
            case "button":
                self.emit(ButtonChanged(self.button))
            case "audio":
                self.emit(AudioChanged(self.audio))
            case "camera":
                self.emit(CameraChanged(self.camera))

    # ------------------------------------------------------------------------------------------- power
    def power_state(self) -> PowerState:
        b = self.battery
        if not self.power_ok:
            return PowerState(available=False)
        net = self._net_power()
        voltage = 12.0 + 1.4 * b.soc / 100 + (0.6 if net > 0 else 0.0)
        ttg = None if net >= 0 else b.capacity_wh * b.soc / 100 / -net * 3600
        return PowerState(
            available=True,
            shore=b.shore,
            ignition=b.ignition,
            soc=round(b.soc, 2),
            time_to_go=None if ttg is None else round(ttg),
            voltage=round(voltage, 2),
            current=round(net / voltage, 2),
            power=round(net, 1),
            charging=net > 0,
            alarm="low-soc" if b.soc < 10 else None,
            detail="bulk" if net > 0 and b.soc < 80 else "absorption" if net > 0 else "discharge",
        )

    def _net_power(self) -> float:
        b = self.battery
        gain = (b.charger_w if b.shore else 0.0) + (b.alternator_w if b.ignition else 0.0)
        return gain - b.load_w

    def _schedule_tick(self) -> None:
        self._timer = self.ctx.clock.call_later(self.tick, self._on_tick)

    def _on_tick(self) -> None:
        self.integrate()
        self.publish("power")
        self._schedule_tick()

    def integrate(self) -> None:
        """Bring the battery's charge up to now (energy over the time since the last integration)."""
        now = self.ctx.clock.monotonic()
        if self._last_tick is None:
            self._last_tick = now
            return
        dt = now - self._last_tick
        self._last_tick = now
        b = self.battery
        b.soc = min(100.0, max(0.0, b.soc + self._net_power() * dt / 3600 / b.capacity_wh * 100))

    def set_load(self, in_session: bool) -> None:
        self.integrate()
        self.battery.load_w = self.battery.base_load_w + (self.battery.session_load_w if in_session else 0.0)

    def power_off(self) -> None:
        """The station's PC is off: only the van's own standby load is left (none, in this model)."""
        self.integrate()
        self.battery.load_w = 0.0
        self.publish("power")

    def set_shore(self, on: bool) -> None:
        self.integrate()
        self.battery.shore = on
        self.record("shore", on)
        self.emit(ShoreChanged(on))
        self.publish("power")

    def set_ignition(self, on: bool) -> None:
        self.integrate()
        self.battery.ignition = on
        self.record("ignition", on)
        self.emit(IgnitionChanged(on))
        self.publish("power")

    # ------------------------------------------------------------------------------------------- modem
    def set_modem(self, **changes: Any) -> None:
        before = self.modem
        self.modem = replace(self.modem, **changes)
        self.record("modem", changes)
        if (before.signal, before.technology) != (self.modem.signal, self.modem.technology):
            self.emit(SignalChanged(self.modem.signal, self.modem.technology))
        self.publish("modem")

    # ------------------------------------------------------------------------------------------- displays
    def set_displays(self, **changes: Any) -> None:
        if "powered" in changes:
            self.set_load(in_session=changes["powered"])  # lit screens, warm printer: the station's own load
        self.displays = _laid_out(replace(self.displays, **changes))
        self.record("displays", changes)
        self.publish("displays")

    def plug_output(self, role: str, connected: bool) -> None:
        outputs = []
        for out in self.displays.outputs:
            if out.role == role and out.connected != connected:
                out = replace(out, connected=connected)
                self.emit(OutputConnected(out.name, out.role) if connected else OutputDisconnected(out.name, out.role))
            outputs.append(out)
        self.set_displays(outputs=tuple(outputs))

    # ------------------------------------------------------------------------------------------- scanner
    def set_scanner(self, **changes: Any) -> None:
        self.scanner = replace(self.scanner, **changes)
        self.record("scanner", changes)
        self.publish("scanner")

    async def scan(self, request: ScanRequest) -> ScanResult:
        if not self.scanner.present:
            return ScanResult((), "unplugged")
        if self.cover_open:
            return ScanResult((), "cover-open")
        if self.scanner.status == "scanning":
            return ScanResult((), "busy")
        job = next(self.scan_ids)
        self.set_scanner(status="scanning", fault=None)
        pages: list[RawPage] = []
        fault: str | None = None
        feeder = request.source in ("adf", "duplex")
        # A duplex sheet gives two pages, front then back, in the order the PDF keeps.
        sides = 2 if request.source == "duplex" else 1
        wanted = (self.adf_sheets if request.multi else 1) * sides if feeder else 1
        if feeder and self.adf_sheets == 0:
            fault = "no-docs"
        for number in range(1, wanted + 1):
            await self.ctx.clock.sleep(self.page_seconds)
            if not self.scanner.present:
                fault = "unplugged"
                break
            if self.scan_jam_at is not None and number >= self.scan_jam_at:
                self.scan_jam_at = None
                fault = "jammed"
                break
            if feeder and number % sides == 0:
                self.adf_sheets -= 1
            pages.append(synthetic_page(request, number))
        self.set_scanner(status="fault" if fault else "idle", fault=fault)
        if fault:
            self.emit(DeviceFault("scanner", f"scanner.{fault}"))
        else:
            self.emit(ScanFinished(job, len(pages)))
        return ScanResult(tuple(pages), fault)

    # ------------------------------------------------------------------------------------------- printer
    def set_printer(self, **changes: Any) -> None:
        before = self.printer
        self.printer = replace(self.printer, **changes)
        self.record("printer", changes)
        for reason in set(self.printer.reasons) - set(before.reasons):
            self.emit(DeviceFault("printer", f"printer.{reason}"))
        for reason in set(before.reasons) - set(self.printer.reasons):
            self.emit(DeviceFault("printer", f"printer.{reason}", cleared=True))
        self.publish("printer")

    def _reasons(self, jam: bool | None = None) -> tuple[str, ...]:
        reasons = [r for r in self.printer.reasons if r in ("media-jam",)] if jam is None else []
        if jam:
            reasons.append("media-jam")
        if self.paper == 0:
            reasons.append("media-empty")
        if self.toner < 10:
            reasons.append("toner-low")
        if not self.printer.present:
            reasons.append("offline")
        return tuple(reasons)

    def submit_foreign(self, content: bytes) -> int:
        """The session app prints through the queue: a job under the app's own title, the session's if one is open."""
        job_id = next(self.job_ids)
        spool = self.spool / f"d{job_id:05d}-001"
        spool.write_bytes(content)
        owner = self.printer_session or ""
        title = f"kiosk-{owner}-app{job_id}" if owner else f"kiosk-app{job_id}"  # the app's own title never kept
        job = PrintJob(job_id, owner, title, "pending")
        self.jobs[job_id] = SimJob(job, spool, 1, self.page_print_seconds, foreign=True)
        self.emit(JobStateChanged(job))
        self.kick_printer()
        return job_id

    def submit(self, document: Path, title: str, session: str) -> int:
        job_id = next(self.job_ids)
        spool = self.spool / f"d{job_id:05d}-001"
        data = document.read_bytes()
        spool.write_bytes(data)
        pages = max(1, data.count(b"/Type /Page") - data.count(b"/Type /Pages"))
        job = PrintJob(job_id, session, title, "pending")
        self.jobs[job_id] = SimJob(job, spool, pages, pages * self.page_print_seconds)
        self.emit(JobStateChanged(job))
        if self._printing is None or self._printing.done():
            self._printing = asyncio.get_running_loop().create_task(self._print_loop())
        return job_id

    def set_job(self, sim: SimJob, state: JobState, reasons: tuple[str, ...] = ()) -> None:
        if sim.job.state == state and sim.job.reasons == reasons:
            return
        sim.job = replace(sim.job, state=state, reasons=reasons)
        self.emit(JobStateChanged(sim.job))

    async def _print_loop(self) -> None:
        """Prints queued jobs in order, a page at a time; stops (without losing the job) on no paper/offline."""
        step = 1.0
        while True:
            queue = [j for j in self.jobs.values() if j.job.state not in JOB_FINISHED and j.job.state != "held"]
            if not queue:
                self.set_printer(status="idle" if self.printer.present else "unavailable")
                return
            current = queue[0]
            blocked = [r for r in self.printer.reasons if r in ("media-empty", "media-jam", "offline")]
            if blocked:
                self.set_printer(status="stopped" if self.printer.present else "unavailable")
                self.set_job(current, "processing" if current.job.state == "processing" else "pending", tuple(blocked))
            else:
                self.set_printer(status="printing")
                self.set_job(current, "processing")
                current.remaining -= step
                if current.remaining <= 0:
                    self.paper = max(0, self.paper - current.pages)
                    self.set_job(current, "completed")
                    current.spool.unlink(missing_ok=True)  # like PreserveJobFiles No
                    self.set_printer(reasons=self._reasons())
            await self.ctx.clock.sleep(step)

    def kick_printer(self) -> None:
        if any(j.job.state not in JOB_FINISHED for j in self.jobs.values()) and (
            self._printing is None or self._printing.done()
        ):
            self._printing = asyncio.get_running_loop().create_task(self._print_loop())

    def jam_printer(self) -> None:
        active = [j for j in self.jobs.values() if j.job.state == "processing"]
        for sim in active:
            self.set_job(sim, "aborted", ("media-jam",))
            sim.spool.unlink(missing_ok=True)
        self.set_printer(status="stopped", reasons=self._reasons(jam=True))

    # ------------------------------------------------------------------------------------------- button
    def set_led(self, pattern: LedPattern) -> None:
        if self.button.led != pattern:
            self.button = replace(self.button, led=pattern)
            self.record("led", pattern)
            self.publish("button")

    async def press(self, seconds: float) -> None:
        self.button = replace(self.button, pressed=True)
        self.record("button", "pressed")
        self.publish("button")
        await self.ctx.clock.sleep(seconds)
        self.button = replace(self.button, pressed=False)
        self.record("button", "released")
        self.publish("button")
        self.emit(ButtonPressed(long=seconds >= self.hold_time))

    # ------------------------------------------------------------------------------------------- verbs
    def verbs(self) -> Mapping[str, Verb]:
        return VERBS(self)


def synthetic_page(request: ScanRequest, number: int) -> RawPage:
    """An A4 page at the requested resolution: white paper with dark 'text lines' (cheap to make)."""
    import numpy as np  # only when a page is scanned: numpy is slow to import and the daemon starts without it

    dpi = request.resolution
    width, height = round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)
    page = np.full((height, width), 245, dtype=np.uint8)
    line_height = max(2, dpi // 30)
    margin = dpi // 2
    for row in range(margin, height - margin, line_height * 3):
        length = width - 2 * margin - ((row * 7919 + number * 104729) % max(1, width // 3))
        page[row : row + line_height, margin : margin + max(0, length)] = 30
    if request.mode == "color":
        page = np.repeat(page[:, :, None], 3, axis=2)
    return RawPage(page, dpi, request.mode)


def _on_off(args: list[str], verb: str) -> bool:
    if len(args) != 1 or args[0] not in ("on", "off"):
        raise ValueError(f"{verb}: expected 'on' or 'off'")
    return args[0] == "on"


def _number(args: list[str], verb: str, low: float, high: float) -> float:
    try:
        value = float(args[0])
    except (IndexError, ValueError):
        raise ValueError(f"{verb}: expected a number between {low:g} and {high:g}") from None
    if not low <= value <= high:
        raise ValueError(f"{verb}: expected a number between {low:g} and {high:g}, got {value:g}")
    return value


def _choice(args: list[str], verb: str, choices: tuple[str, ...]) -> str:
    if not args or args[0] not in choices:
        raise ValueError(f"{verb}: expected one of {', '.join(choices)}")
    return args[0]


def VERBS(van: SimVan) -> dict[str, Verb]:
    """The fault verbs of the simulated van (``kioskctl sim <verb> …``, scenario ``do = "<verb> …"``)."""

    async def shore(args: list[str]) -> str:
        if args and args[0] == "flap":
            count = int(_number(args[1:] or ["3"], "shore flap", 1, 50))
            for _ in range(count):
                van.set_shore(not van.battery.shore)
                await van.ctx.clock.sleep(1.0)
                van.set_shore(not van.battery.shore)
                await van.ctx.clock.sleep(1.0)
            return f"shore flapped {count} times"
        van.set_shore(_on_off(args, "shore"))
        return f"shore {'on' if van.battery.shore else 'off'}"

    async def soc(args: list[str]) -> str:
        van.integrate()
        van.battery.soc = _number(args, "soc", 0, 100)
        van.record("soc", van.battery.soc)
        van.publish("power")
        return f"soc {van.battery.soc:g} %"

    async def load(args: list[str]) -> str:
        van.integrate()
        van.battery.base_load_w = _number(args, "load", 0, 5000)
        van.battery.load_w = van.battery.base_load_w
        van.publish("power")
        return f"base load {van.battery.base_load_w:g} W"

    async def ignition(args: list[str]) -> str:
        van.set_ignition(_on_off(args, "ignition"))
        return f"ignition {'on' if van.battery.ignition else 'off'}"

    async def monitor(args: list[str]) -> str:
        van.power_ok = _choice(args, "monitor", ("up", "down")) == "up"
        van.publish("power")
        return f"battery monitor {'up' if van.power_ok else 'down'}"

    async def signal(args: list[str]) -> str:
        quality = int(_number(args, "signal", 0, 100))
        registration = "home" if quality > 0 else "searching"
        van.set_modem(
            signal=quality,
            rsrp=rsrp_of(quality),
            registration=registration,
            internet=quality > 5 and van.modem.connected and not van.bearer_broken,
        )
        return f"signal {quality} %"

    async def technology(args: list[str]) -> str:
        tech: Technology = _choice(args, "tech", ("none", "gsm", "umts", "lte", "5gnr"))  # type: ignore[assignment]
        van.set_modem(technology=tech)
        return f"technology {tech}"

    async def operator(args: list[str]) -> str:
        if not args:
            raise ValueError("operator: expected a name")
        van.set_modem(operator=" ".join(args))
        return f"operator {' '.join(args)}"

    async def link(args: list[str]) -> str:
        up = _choice(args, "link", ("up", "down")) == "up"
        van.set_modem(connected=up, internet=up and (van.modem.signal or 0) > 5 and not van.bearer_broken)
        return f"link {'up' if up else 'down'}"

    async def internet(args: list[str]) -> str:
        van.bearer_broken = _choice(args, "internet", ("up", "down")) == "down"
        van.set_modem(internet=not van.bearer_broken and van.modem.connected)
        return f"internet {'down (the link stays up)' if van.bearer_broken else 'up'}"

    async def sim_card(args: list[str]) -> str:
        status = _choice(args, "sim", ("ready", "locked", "missing"))
        ready = status == "ready"
        registration = "home" if ready and (van.modem.signal or 0) > 0 else "idle"
        van.set_modem(sim=status, registration=registration, connected=ready and van.modem.connected)
        return f"SIM {status}"

    async def modem(args: list[str]) -> str:
        what = _choice(args, "modem", ("hang", "unplug", "plug"))
        if what == "hang":
            van.modem_hung = True
            van.set_modem(connected=False, internet=False, detail="not responding")
        else:
            van.set_modem(present=what == "plug", registration="home" if what == "plug" else "unknown")
        return f"modem {what}"

    async def output(args: list[str]) -> str:
        role = _choice(args, "output", ("agent", "citizen"))
        van.plug_output(role, _choice(args[1:], "output", ("plug", "unplug")) == "plug")
        return f"output {role} {args[1]}"

    async def scanner(args: list[str]) -> str:
        what = _choice(args, "scanner", ("unplug", "plug", "jam", "cover", "load", "clear"))
        if what in ("unplug", "plug"):
            van.set_scanner(present=what == "plug", status="idle" if what == "plug" else "absent")
        elif what == "jam":
            van.scan_jam_at = int(_number(args[1:] or ["1"], "scanner jam", 1, 100))
        elif what == "cover":
            van.cover_open = _choice(args[1:], "scanner cover", ("open", "close")) == "open"
        elif what == "load":
            van.adf_sheets = int(_number(args[1:], "scanner load", 0, 100))
        else:
            van.set_scanner(status="idle", fault=None)
            van.emit(DeviceFault("scanner", "scanner.jammed", cleared=True))
        return f"scanner {' '.join(args)}"

    async def printer(args: list[str]) -> str:
        choices = ("unplug", "plug", "paper", "jam", "clear", "toner", "stuck", "unstuck", "app-job")
        what = _choice(args, "printer", choices)
        if what == "app-job":
            job_id = van.submit_foreign(" ".join(args[1:]).encode() or b"%PDF-1.4 app page")
            return f"the session app printed job {job_id}"
        if what in ("stuck", "unstuck"):
            van.purge_stuck = what == "stuck"
            return f"printer purge {'refused' if van.purge_stuck else 'works again'}"
        if what == "paper":
            van.paper = int(_number(args[1:], "printer paper", 0, 1000))
        elif what == "toner":
            van.toner = int(_number(args[1:], "printer toner", 0, 100))
        elif what == "jam":
            van.jam_printer()
            return "printer jammed"
        elif what in ("plug", "unplug"):
            van.printer = replace(van.printer, present=what == "plug")
        jam = False if what == "clear" else None
        van.set_printer(reasons=van._reasons(jam), status="idle" if van.printer.present else "unavailable")
        van.kick_printer()
        return f"printer {' '.join(args)}"

    async def press(args: list[str]) -> str:
        await van.press(0.2)
        return "button pressed"

    async def hold(args: list[str]) -> str:
        await van.press(_number(args, "hold", 0, 60) if args else van.hold_time)
        return "button held"

    async def camera(args: list[str]) -> str:
        plug = _choice(args, "camera", ("plug", "unplug")) == "plug"
        van.camera = replace(van.camera, present=plug, in_use=False)
        van.publish("camera")
        return f"camera {args[0]}"

    async def audio(args: list[str]) -> str:
        what = _choice(args, "audio", ("unplug", "plug", "stream"))
        if what == "stream":
            van.audio = replace(van.audio, streams=van.audio.streams + 1, mic_muted=False)
        else:
            van.audio = replace(van.audio, present=what == "plug")
        van.publish("audio")
        return f"audio {what}"

    return {
        "shore": Verb("shore on|off|flap [N]: the shore (mains) plug", shore),
        "soc": Verb("soc PERCENT: set the battery's state of charge", soc),
        "load": Verb("load WATTS: the van's base load", load),
        "ignition": Verb("ignition on|off: the engine", ignition),
        "monitor": Verb("monitor up|down: the battery monitor answers or not", monitor),
        "signal": Verb("signal PERCENT: LTE signal quality", signal),
        "tech": Verb("tech none|gsm|umts|lte|5gnr: access technology", technology),
        "operator": Verb("operator NAME: the network operator", operator),
        "link": Verb("link up|down: the data connection", link),
        "modem": Verb("modem hang|unplug|plug", modem),
        "internet": Verb("internet down|up: the link stays up but nothing passes (a reconnect fixes it)", internet),
        "sim": Verb("sim ready|locked|missing: the modem's SIM card", sim_card),
        "output": Verb("output agent|citizen plug|unplug: a screen's cable", output),
        "scanner": Verb("scanner unplug|plug|jam [PAGE]|cover open|close|load N|clear", scanner),
        "printer": Verb(
            "printer unplug|plug|paper N|jam|clear|toner PERCENT|stuck|unstuck (purge refused)|app-job [TEXT]", printer
        ),
        "press": Verb("press: a short press of the button", press),
        "hold": Verb("hold [SECONDS]: hold the button (default: the hold time)", hold),
        "camera": Verb("camera plug|unplug", camera),
        "audio": Verb("audio plug|unplug|stream (a citizen's call opens a stream)", audio),
    }


class VanSimulation:
    """The ``Simulation`` contract over the van (found by the daemon in the shared models)."""

    def __init__(self, van: SimVan) -> None:
        self.van = van

    def verbs(self) -> Mapping[str, str]:
        return {name: verb.help for name, verb in self.van.verbs().items()}

    async def apply(self, verb: str, args: list[str]) -> str:
        table = self.van.verbs()
        if verb not in table:
            raise KeyError(verb)
        return await table[verb].run(args)


def _laid_out(displays: DisplaysState) -> DisplaysState:
    """The layout the flags mean, with the citizen screen beside the agent's unless it mirrors it (as xrandr does)."""
    layout: DisplayLayout = (
        "off"
        if not displays.powered
        else "curtain"
        if displays.curtain
        else "mirror"
        if displays.mirrored
        else "extended"
    )
    agent_width = next((o.width for o in displays.outputs if o.role == "agent"), 0)
    beside = layout in ("curtain", "extended")
    outputs = tuple(replace(o, x=agent_width if beside and o.role == "citizen" else 0) for o in displays.outputs)
    return replace(displays, outputs=outputs, layout=layout)
