"""What every device contract shares: the device kinds, injected time, the base events and the ``Device`` shape.

Like gpiozero's ``pins/__init__.py``, each contract documents what a backend MUST implement and what it MAY
override; a backend that cannot do an optional thing raises ``DeviceUnsupported``. Nothing here knows a device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

# Drivers import the errors they raise from the HAL, so that drivers/sim/ needs nothing but kioskd.hal.
from kioskd.errors import DeviceError as DeviceError
from kioskd.errors import DeviceUnsupported as DeviceUnsupported
from kioskd.errors import ProfileError as ProfileError

DeviceKind = Literal["power", "modem", "displays", "scanner", "printer", "button", "audio", "camera", "inputs"]
DriverKind = DeviceKind | Literal["host", "media"]  # the host has a backend but no state to show; media its own table
DEVICE_KINDS: tuple[DeviceKind, ...] = (
    "power",
    "modem",
    "displays",
    "scanner",
    "printer",
    "button",
    "audio",
    "camera",
    "inputs",
)


class DriverOptions(BaseModel):
    """Base of a backend's options (its profile section, minus ``driver``): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


# --------------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    """Base of everything on the event bus."""


@dataclass(frozen=True)
class StateEvent(Event):
    """A device's whole new state; the station folds it into its snapshot under ``device``."""

    device: ClassVar[DeviceKind]


@dataclass(frozen=True)
class DeviceFault(Event):
    """A device reports a problem an agent must see; ``fault`` is a catalogue key, ``cleared`` when it is over.

    Backends report it through ``kioskd.hal.context.FaultReporter``, which sends each change once."""

    kind: DeviceKind
    fault: str
    cleared: bool = False


# --------------------------------------------------------------------------------------------------- contract
class Device(Protocol):
    """What every backend offers.

    A backend MUST implement:
    - ``__init__(ctx: DriverContext)``: validate its options (``ctx.parse_options(cls.options_model)``), no I/O;
    - ``async start()``: open the device and begin reporting (events through ``ctx.emit``); a device that is
      missing is reported as absent in its state, not raised, so the station starts without it;
    - ``async close()``: release everything (threads, connections, tasks); called once, also after a failed start.

    A backend MAY declare:
    - ``options_model``: a class attribute, the ``DriverOptions`` model of its profile section, read by
      ``kioskctl profile schema`` and ``profile check`` without building the backend (none means no options);
    - ``async diagnose() -> list[Diagnosis]``: findings of its own for ``kioskctl doctor`` (``Diagnosable``), as
      Home Assistant's integrations keep their diagnostics and redaction with them."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


Verdict = Literal["ok", "warn", "fail", "info"]


@dataclass(frozen=True)
class Diagnosis:
    """One line a backend adds to ``kioskctl doctor``: ``key`` is the catalogue entry saying what to do (with its
    ``params``); ``detail`` is technical and carries no citizen data."""

    name: str  # the doctor's line, e.g. "cups"
    verdict: Verdict
    detail: str = ""
    key: str = ""
    params: Mapping[str, object] = field(default_factory=dict)


@runtime_checkable
class Diagnosable(Protocol):
    """A backend with checks of its own (its service's configuration, say) beyond what its state shows."""

    async def diagnose(self) -> list[Diagnosis]:
        """Look (read-only, no citizen data) and say what is wrong; never raises for what it finds."""
        ...
