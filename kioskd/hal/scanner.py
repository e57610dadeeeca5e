"""The scanner contract: its state, what a scan asks for and what it returns (raw pages), and its events.

Pages are raw pixels; cleaning, PDF making and where they go are the scanning policy's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

from kioskd.hal.base import Device, DeviceKind, Event, StateEvent

if TYPE_CHECKING:  # numpy costs a tenth of a second at start-up; only scans carry pixels
    import numpy as np
    import numpy.typing as npt

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


@dataclass(frozen=True)
class ScannerChanged(StateEvent):
    device: ClassVar[DeviceKind] = "scanner"
    state: ScannerState


@dataclass(frozen=True)
class ScanFinished(Event):
    job: int
    pages: int


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


@runtime_checkable
class Scanner(Device, Protocol):
    """A document scanner (SANE). Its backend owns one worker thread; handles never cross threads.

    MUST: ``state``; ``scan`` returning the pages scanned before any fault (a fault is a result, not an
    exception), then ``ScanFinished`` or a ``DeviceFault`` ``scanner.<fault>``. MAY: offer only some sources
    (``state.sources``)."""

    @property
    def state(self) -> ScannerState: ...

    async def scan(self, request: ScanRequest) -> ScanResult:
        """Scan one page or the whole feeder; a fault keeps the pages scanned before it."""
        ...
