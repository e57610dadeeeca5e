"""The hardware abstraction layer: one contract per device kind, their state values and typed events.

This is the only thing policies know of hardware. It imports no hardware library and no driver; backends (real
ones in ``drivers/<kind>/``, simulated ones in ``drivers/sim/``) implement these contracts and report changes as
events through the ``DriverContext`` they are built with."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

# Drivers import the errors they raise from here, so that drivers/sim/ needs nothing but kioskd.hal.
from kioskd.errors import DeviceError as DeviceError
from kioskd.errors import ProfileError as ProfileError

if TYPE_CHECKING:  # numpy costs a tenth of a second at start-up; only scans carry pixels
    import numpy as np
    import numpy.typing as npt

DeviceKind = Literal["power", "modem", "displays", "scanner", "printer", "button", "audio", "camera"]
DriverKind = DeviceKind | Literal["host"]  # the host (power off, inhibit) has a backend but no state to show
DEVICE_KINDS: tuple[DeviceKind, ...] = (
    "power",
    "modem",
    "displays",
    "scanner",
    "printer",
    "button",
    "audio",
    "camera",
)


# --------------------------------------------------------------------------------------------------- time
class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Injected time (``kioskd.clock``): real, accelerated for scenarios, or manual for tests."""

    speed: float

    def monotonic(self) -> float:
        """Seconds for durations and timers (simulated seconds on a simulated clock)."""
        ...

    def wall(self) -> float:
        """Epoch seconds for receipts and histories."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


# --------------------------------------------------------------------------------------------------- states
@dataclass(frozen=True)
class PowerState:
    """What the power backend(s) know. ``None`` means "this backend cannot tell" (not "false")."""

    available: bool = False  # at least one good reading and not stale
    shore: bool | None = None
    ignition: bool | None = None
    soc: float | None = None  # state of charge, %
    time_to_go: float | None = None  # seconds of autonomy at the present load, as the backend reports it
    voltage: float | None = None  # V
    current: float | None = None  # A, positive while charging
    power: float | None = None  # W, positive while charging
    charging: bool | None = None
    alarm: str | None = None  # backend alarm, e.g. "low-voltage"
    detail: str = ""  # technician's detail, e.g. the charger state "bulk"


Registration = Literal["unknown", "idle", "searching", "home", "roaming", "denied"]
Technology = Literal["none", "gsm", "umts", "lte", "5gnr"]
SimStatus = Literal["unknown", "ready", "locked", "missing"]


@dataclass(frozen=True)
class ModemState:
    present: bool = False
    registration: Registration = "unknown"
    technology: Technology = "none"
    signal: int | None = None  # quality in %, as ModemManager's SignalQuality
    operator: str | None = None
    connected: bool = False  # a data bearer is up
    internet: bool | None = None  # the last reachability check: None until one ran
    detail: str = ""
    rsrp: float | None = None  # dBm, LTE or 5G (ModemManager's Signal interface), None when the modem cannot tell
    rsrq: float | None = None  # dB
    sinr: float | None = None  # dB (ModemManager calls it "snr")
    sim: SimStatus = "unknown"
    latitude: float | None = None  # the van's GPS fix from the modem (Location interface), when it has one
    longitude: float | None = None


OutputRole = Literal["agent", "citizen", "other"]
# mirror: the citizen sees the agent's picture; curtain: the citizen sees the neutral page; extended: side by side
# (no common mode to mirror at, or mirroring turned off); off: no output lit.
DisplayLayout = Literal["mirror", "curtain", "extended", "off"]


@dataclass(frozen=True)
class Output:
    name: str
    role: OutputRole
    connected: bool
    width: int = 0  # the mode shown now; 0×0 when the output is off
    height: int = 0
    x: int = 0  # where the output's picture starts in the whole screen
    y: int = 0


@dataclass(frozen=True)
class DisplaysState:
    outputs: tuple[Output, ...] = ()
    mirrored: bool = False
    curtain: bool = False  # privacy: the citizen screen shows a neutral page instead of the agent's
    powered: bool = False
    layout: DisplayLayout = "off"
    detail: str = ""  # technician's detail, e.g. which mode the mirror fell back to and why


# "duplex": the feeder reading both sides of each sheet (front, then back), where the scanner offers it.
ScanSource = Literal["flatbed", "adf", "duplex"]
ScanMode = Literal["color", "gray"]


@dataclass(frozen=True)
class ScannerState:
    present: bool = False
    name: str = ""
    status: Literal["idle", "scanning", "fault", "absent"] = "absent"
    fault: str | None = None  # a catalogue suffix: jammed, no-docs, cover-open, busy, io-error, unplugged
    sources: tuple[ScanSource, ...] = ()


PrinterStatus = Literal["idle", "printing", "stopped", "unavailable"]
JobState = Literal["pending", "held", "processing", "stopped", "completed", "cancelled", "aborted"]
JOB_FINISHED: frozenset[str] = frozenset({"completed", "cancelled", "aborted"})


@dataclass(frozen=True)
class PrinterState:
    present: bool = False
    name: str = ""
    status: PrinterStatus = "unavailable"
    reasons: tuple[str, ...] = ()  # IPP printer-state-reasons without severity suffix, e.g. "media-empty"


@dataclass(frozen=True)
class PrintJob:
    id: int
    session: str
    title: str  # always anonymous: kiosk-<session>-<n>
    state: JobState
    reasons: tuple[str, ...] = ()


# What the LED tells an agent without a screen (README, "Le voyant"): off = station off; slow blink = starting,
# wiping or shutting down; steady = ready; double blink = a citizen's session; fast blink = needs attention.
LedPattern = Literal["off", "steady", "slow", "double", "fast"]
# Each pattern as one cycle of (lit, seconds) steps, repeated; LED backends play it, the README describes it.
LED_CYCLES: dict[LedPattern, tuple[tuple[bool, float], ...]] = {
    "off": ((False, 0.0),),
    "steady": ((True, 0.0),),
    "slow": ((True, 1.0), (False, 1.0)),
    "double": ((True, 0.15), (False, 0.15), (True, 0.15), (False, 1.05)),
    "fast": ((True, 0.1), (False, 0.1)),
}


@dataclass(frozen=True)
class ButtonState:
    present: bool = False
    pressed: bool = False
    led: LedPattern = "off"


@dataclass(frozen=True)
class AudioState:
    present: bool = False
    sink: str | None = None
    source: str | None = None
    volume: int | None = None  # %
    muted: bool = False
    mic_muted: bool = True
    streams: int = 0  # playback + record streams open now


@dataclass(frozen=True)
class CameraState:
    present: bool = False
    name: str = ""
    in_use: bool = False


@dataclass(frozen=True)
class CameraHealth:
    """One health check of the camera (``kioskctl doctor``, ``GET /camera/health``): opened, a few frames grabbed,
    released. ``fault`` is a catalogue key (camera.absent, camera.black, camera.frozen) or None when it is fine."""

    ok: bool
    present: bool
    width: int = 0
    height: int = 0
    frames: int = 0  # frames grabbed
    brightness: float = 0.0  # mean luminance 0–255 over the frames
    black: bool = False
    frozen: bool = False
    fault: str | None = None
    seconds: float = 0.0


DeviceState = (
    PowerState | ModemState | DisplaysState | ScannerState | PrinterState | ButtonState | AudioState | CameraState
)


# --------------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    """Base of everything on the event bus."""


@dataclass(frozen=True)
class StateEvent(Event):
    """A device's whole new state; the station folds it into its snapshot under ``device``."""

    device: ClassVar[DeviceKind]


@dataclass(frozen=True)
class PowerChanged(StateEvent):
    device: ClassVar[DeviceKind] = "power"
    state: PowerState


@dataclass(frozen=True)
class ModemChanged(StateEvent):
    device: ClassVar[DeviceKind] = "modem"
    state: ModemState


@dataclass(frozen=True)
class DisplaysChanged(StateEvent):
    device: ClassVar[DeviceKind] = "displays"
    state: DisplaysState


@dataclass(frozen=True)
class ScannerChanged(StateEvent):
    device: ClassVar[DeviceKind] = "scanner"
    state: ScannerState


@dataclass(frozen=True)
class PrinterChanged(StateEvent):
    device: ClassVar[DeviceKind] = "printer"
    state: PrinterState


@dataclass(frozen=True)
class ButtonChanged(StateEvent):
    device: ClassVar[DeviceKind] = "button"
    state: ButtonState


@dataclass(frozen=True)
class AudioChanged(StateEvent):
    device: ClassVar[DeviceKind] = "audio"
    state: AudioState


@dataclass(frozen=True)
class CameraChanged(StateEvent):
    device: ClassVar[DeviceKind] = "camera"
    state: CameraState


@dataclass(frozen=True)
class ShoreChanged(Event):
    connected: bool


@dataclass(frozen=True)
class IgnitionChanged(Event):
    on: bool


@dataclass(frozen=True)
class SignalChanged(Event):
    quality: int | None
    technology: Technology


@dataclass(frozen=True)
class OutputConnected(Event):
    name: str
    role: OutputRole


@dataclass(frozen=True)
class OutputDisconnected(Event):
    name: str
    role: OutputRole


@dataclass(frozen=True)
class ButtonPressed(Event):
    long: bool  # a hold of at least the profile's hold time


@dataclass(frozen=True)
class JobStateChanged(Event):
    job: PrintJob


@dataclass(frozen=True)
class ScanFinished(Event):
    job: int
    pages: int


@dataclass(frozen=True)
class DeviceFault(Event):
    """A device reports a problem an agent must see; ``fault`` is a catalogue key, ``cleared`` when it is over."""

    kind: DeviceKind
    fault: str
    cleared: bool = False


# --------------------------------------------------------------------------------------------------- scans
@dataclass(frozen=True)
class ScanRequest:
    source: ScanSource = "flatbed"
    resolution: int = 300  # dpi
    mode: ScanMode = "color"
    multi: bool = False  # the whole feeder stack instead of one sheet (duplex: one sheet is two pages)


@dataclass(frozen=True, eq=False)
class RawPage:
    """One page as the scanner delivered it: 8-bit pixels, H×W (gray) or H×W×3 (RGB)."""

    pixels: npt.NDArray[np.uint8]
    dpi: int
    mode: ScanMode


@dataclass(frozen=True)
class ScanResult:
    pages: tuple[RawPage, ...]
    fault: str | None = None  # set when the job stopped early; the pages before it are kept


# --------------------------------------------------------------------------------------------------- contracts
class Device(Protocol):
    """What every backend offers: start (open the device, begin reporting), close (release everything)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class PowerSource(Device, Protocol):
    """Shore, battery and ignition. VE.Direct, NUT, UPower, sysfs and GPIO backends report subsets of it."""

    @property
    def state(self) -> PowerState: ...


@runtime_checkable
class Modem(Device, Protocol):
    """The LTE modem (ModemManager in a van)."""

    @property
    def state(self) -> ModemState: ...

    async def reset(self) -> None:
        """Recover a hung modem (ModemManager ``Reset``, or a power cycle)."""
        ...

    async def reconnect(self) -> None:
        """Bring the data bearer down and up again with the profile's APN (``Simple.Disconnect``/``Connect``)."""
        ...

    async def check_internet(self) -> bool:
        """Whether the Internet is really reachable through the modem now; updates ``state.internet``."""
        ...


@runtime_checkable
class Displays(Device, Protocol):
    """The agent's screen and the citizen-facing one (xrandr, wlroots)."""

    @property
    def state(self) -> DisplaysState: ...

    async def set_mirror(self, on: bool) -> None: ...

    async def set_curtain(self, on: bool) -> None:
        """Privacy mode: the citizen screen stops mirroring the agent's."""
        ...

    async def set_power(self, on: bool) -> None: ...

    async def clear_clipboard(self) -> None:
        """Empty every selection of the session's display (the wipe: a citizen's copied password)."""
        ...


@runtime_checkable
class Scanner(Device, Protocol):
    """A document scanner (SANE). Its backend owns one worker thread; handles never cross threads."""

    @property
    def state(self) -> ScannerState: ...

    async def scan(self, request: ScanRequest) -> ScanResult:
        """Scan one page or the whole feeder; a fault keeps the pages scanned before it."""
        ...


@runtime_checkable
class Printer(Device, Protocol):
    """A print queue (CUPS). Jobs kioskd submits carry an anonymous title ``kiosk-<session>-<n>``; jobs that reach
    the queue another way (the session app printing through CUPS: "foreign" jobs, titled by the app, perhaps with
    the citizen's name) belong to the session open when they arrive, and every wipe removes them all."""

    @property
    def state(self) -> PrinterState: ...

    def set_session(self, session: str | None) -> None:
        """The session open now (None between sessions): foreign jobs arriving meanwhile are counted as its own."""
        ...

    async def submit(self, document: Path, *, title: str, session: str) -> int: ...

    async def jobs(self, session: str) -> tuple[PrintJob, ...]:
        """The session's jobs, foreign ones included; their titles as the API may show them (anonymous)."""
        ...

    async def cancel_jobs(self, session: str) -> None: ...

    async def purge_jobs(self, session: str) -> None:
        """Remove the session's jobs and every foreign job on the queue, with their files and their history
        (a foreign job can only come from a session app: after a crash, nobody knows which session's it was)."""
        ...

    async def verify_purged(self, session: str) -> tuple[str, ...]:
        """What is left of the session or of any foreign job (jobs listed, spool files); empty when nothing is."""
        ...


@runtime_checkable
class Button(Device, Protocol):
    """The station's one button and its LED (gpiozero, evdev)."""

    @property
    def state(self) -> ButtonState: ...

    async def set_led(self, pattern: LedPattern) -> None: ...


@runtime_checkable
class Audio(Device, Protocol):
    """Speakers and microphone (PulseAudio)."""

    @property
    def state(self) -> AudioState: ...

    async def session_start(self) -> None:
        """A citizen arrives: output unmuted at the profile's volume, microphone open (video calls)."""
        ...

    async def reset(self) -> None:
        """Back to the van's defaults between citizens: streams closed, default volume, microphone muted."""
        ...


@runtime_checkable
class Camera(Device, Protocol):
    """The document/face camera (V4L2 through OpenCV)."""

    @property
    def state(self) -> CameraState: ...

    async def health(self) -> CameraHealth:
        """Open, grab a few frames, judge them (black, frozen), release."""
        ...

    async def reset(self) -> None:
        """Release the camera and drop every frame held; fails while another process still holds it."""
        ...


class InhibitLock(Protocol):
    def release(self) -> None: ...


@runtime_checkable
class Host(Device, Protocol):
    """The machine itself (logind on a van): powering off, and holding off a shutdown while a wipe runs."""

    async def power_off(self) -> None: ...

    async def inhibit(self, why: str) -> InhibitLock:
        """Delay shutdown/sleep until the lock is released (logind ``Inhibit``, mode ``delay``)."""
        ...


@runtime_checkable
class Simulation(Protocol):
    """A backend package that simulates hardware offers fault verbs (``kioskctl sim …``) through this."""

    def verbs(self) -> Mapping[str, str]:
        """Verb → one-line help."""
        ...

    async def apply(self, verb: str, args: list[str]) -> str:
        """Act on the simulation; returns a short description of what changed. Raises ``ValueError`` on bad
        arguments, ``KeyError`` on an unknown verb."""
        ...


CONTRACTS: dict[DeviceKind, type[Any]] = {
    "power": PowerSource,
    "modem": Modem,
    "displays": Displays,
    "scanner": Scanner,
    "printer": Printer,
    "button": Button,
    "audio": Audio,
    "camera": Camera,
}

# --------------------------------------------------------------------------------------------------- context
OptionsT = TypeVar("OptionsT", bound=BaseModel)


class DriverOptions(BaseModel):
    """Base of a backend's options (its profile section, minus ``driver``): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class DriverContext:
    """What a backend is built with: its options, the clock, a thread-safe way to report events, and a place to
    share one model between the backends of one package (the simulated van)."""

    kind: DriverKind
    driver: str
    options: Mapping[str, Any]
    clock: Clock
    emit: Callable[[Event], None]  # safe from any thread
    runtime_dir: Path
    shared: dict[str, Any] = field(default_factory=dict)
    source: str = "<profile>"  # the profile file, for error messages
    options_model: type[BaseModel] | None = None  # set by parse_options
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def parse_options(self, model: type[OptionsT]) -> OptionsT:
        """The section validated against ``model``; a bad key raises a ``ProfileError`` naming file and key."""
        self.options_model = model  # what the options are checked against (the generated profile schema)
        try:
            return model.model_validate(dict(self.options))
        except ValidationError as exc:
            table = "host" if self.kind == "host" else f"devices.{self.kind}"
            problems = [
                (".".join([table, *(str(part) for part in e["loc"])]), f"{e['msg']} (got {e.get('input')!r})")
                for e in exc.errors()
            ]
            raise ProfileError(
                problems[0][1],
                where=f"{self.source}: {problems[0][0]}",
                action=f"fix the {self.driver!r} options of [{table}]",
                problems=problems,
            ) from None

    def shared_model(self, name: str, factory: Callable[[], Any]) -> Any:
        """One object per name for all backends of this daemon (created by the first one that asks)."""
        with self._lock:
            if name not in self.shared:
                self.shared[name] = factory()
            return self.shared[name]
