"""What a backend is built with and reports through: its context (options, clock, emit), the options base, the
fault reporter every kind shares, and the ``Devices`` of one station typed by contract.

It builds nothing from a profile (that is ``loader``'s) and holds no policy."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from kioskd.hal.audio import Audio
from kioskd.hal.base import DEVICE_KINDS, Clock, DeviceFault, DeviceKind, DriverKind, Event, ProfileError
from kioskd.hal.base import DriverOptions as DriverOptions
from kioskd.hal.button import Button
from kioskd.hal.camera import Camera
from kioskd.hal.displays import Displays
from kioskd.hal.entry_points import load_backend
from kioskd.hal.host import Host
from kioskd.hal.inputs import Inputs
from kioskd.hal.media import Media
from kioskd.hal.modem import Modem
from kioskd.hal.power import PowerSource
from kioskd.hal.printer import Printer
from kioskd.hal.scanner import Scanner

OptionsT = TypeVar("OptionsT", bound=BaseModel)

CONTRACTS: dict[DeviceKind, type[Any]] = {
    "power": PowerSource,
    "modem": Modem,
    "displays": Displays,
    "scanner": Scanner,
    "printer": Printer,
    "button": Button,
    "audio": Audio,
    "camera": Camera,
    "inputs": Inputs,
}


def contract_of(kind: DriverKind) -> type[Any]:
    if kind == "media":
        return Media
    return Host if kind == "host" else CONTRACTS[kind]


def options_model_of(backend: type[Any]) -> type[BaseModel]:
    """The options model a backend class declares (``options_model``); a backend that declares none takes none."""
    model = getattr(backend, "options_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else DriverOptions


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
    # How a backend made of other backends (power "combined") finds its parts: the entry points, unless the
    # daemon's loader says otherwise. Backends never import the loader themselves.
    find_backend: Callable[[DriverKind, str, str], type[Any]] = load_backend
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def parse_options(self, model: type[OptionsT]) -> OptionsT:
        """The section validated against ``model``; a bad key raises a ``ProfileError`` naming file and key."""
        self.options_model = model  # what the options are checked against (the effective profile)
        try:
            return model.model_validate(dict(self.options))
        except ValidationError as exc:
            table = self.kind if self.kind in ("host", "media") else f"devices.{self.kind}"
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

    def build_part(
        self, kind: DriverKind, driver: str, options: Mapping[str, Any], emit: Callable[[Event], None], where: str
    ) -> Any:
        """Another backend of this daemon, built as the loader builds one (``where`` names its place in the
        profile), with its own ``emit``; raises ``ProfileError`` when it is missing or breaks ``kind``'s contract."""
        source = f"{self.source}: {where}"
        cls = self.find_backend(kind, driver, source)
        child = DriverContext(
            kind=kind,
            driver=driver,
            options=options,
            clock=self.clock,
            emit=emit,
            runtime_dir=self.runtime_dir,
            shared=self.shared,
            source=source,
            find_backend=self.find_backend,
        )
        part = cls(child)
        if not isinstance(part, contract_of(kind)):
            raise ProfileError(
                f"backend {driver!r} does not implement the {kind} contract",
                where=f"{self.source}: [{kind}] {where}.driver",
                action=f"name a {kind} backend",
            )
        return part


class FaultReporter:
    """The faults one device has raised, each told once: raised when it appears, cleared when it goes.

    Every backend reports faults through one of these instead of keeping its own set (power, PulseAudio and OpenCV
    each did). It runs on one thread at a time: the one its backend reports from."""

    def __init__(self, kind: DeviceKind, emit: Callable[[Event], None]) -> None:
        self.kind = kind
        self._emit = emit
        self.active: tuple[str, ...] = ()  # oldest first

    def set(self, key: str, on: bool) -> None:
        """Raise ``key`` (once) when ``on``, clear it (once) when not."""
        if on and key not in self.active:
            self.active = (*self.active, key)
            self._emit(DeviceFault(self.kind, key))
        elif not on and key in self.active:
            self.active = tuple(k for k in self.active if k != key)
            self._emit(DeviceFault(self.kind, key, cleared=True))

    def replace(self, faults: Iterable[str]) -> None:
        """Take the complete set of faults active now: clear those gone, raise those new. When a fault clears while
        others stay, the latest one still active is told again: the station keeps one notice per device, and
        clearing one fault cleared it."""
        wanted = tuple(dict.fromkeys(faults))
        gone = [key for key in self.active if key not in wanted]
        added = [key for key in wanted if key not in self.active]
        kept = [key for key in self.active if key in wanted]
        self.active = (*kept, *added)
        for key in gone:
            self._emit(DeviceFault(self.kind, key, cleared=True))
        for key in added:
            self._emit(DeviceFault(self.kind, key))
        if gone and not added and kept:
            self._emit(DeviceFault(self.kind, kept[-1]))

    def forget(self) -> None:
        """No fault any more, without a word (the backend is closing)."""
        self.active = ()


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


@dataclass
class Devices:
    """The nine backends of one station (and its host), typed by contract."""

    power: PowerSource
    modem: Modem
    displays: Displays
    scanner: Scanner
    printer: Printer
    button: Button
    audio: Audio
    camera: Camera
    inputs: Inputs
    host: Host
    simulation: Simulation | None = None
    media: Media | None = None  # the citizen's USB sticks ([media]); None in stations built without one

    def all(self) -> list[tuple[DriverKind, Any]]:
        kinds: tuple[DriverKind, ...] = (*DEVICE_KINDS, "host", "media")
        return [(kind, getattr(self, kind)) for kind in kinds if getattr(self, kind) is not None]
