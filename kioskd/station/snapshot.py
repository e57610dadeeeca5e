"""The station's one immutable snapshot (``StationState``) and the event that carries its changes.

The snapshot is what the API serves and streams; it holds device states, the session's counts and the agent's
notices, never a citizen's data (no file names, no URLs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from kioskd import messages
from kioskd.hal import (
    AudioState,
    ButtonState,
    CameraState,
    DisplaysState,
    Event,
    InputsState,
    ModemState,
    PowerState,
    PrinterState,
    ScannerState,
)
from kioskd.policies.connectivity import ConnectivityState
from kioskd.policies.handover import HandoverState
from kioskd.policies.media import MediaView
from kioskd.policies.update import UpdateState

Mode = Literal["off", "starting", "ready", "in_session", "wiping", "travelling", "shutting_down"]
MODES: tuple[Mode, ...] = ("off", "starting", "ready", "in_session", "wiping", "travelling", "shutting_down")
Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Notice:
    """A message the agent should see (catalogue key + parameters), until it is replaced or cleared."""

    topic: str  # one notice per topic: "power", "printer", "wipe", …
    key: str
    level: Level = "info"
    params: tuple[tuple[str, Any], ...] = ()
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        params = dict(self.params)
        try:
            text = messages.both(self.key, **params)
        except (KeyError, IndexError):  # a driver's fault without a catalogue entry: still shown, never a 500
            text = {**messages.both("device.fault.unknown", fault=self.key), "key": self.key}
        return {"topic": self.topic, "level": self.level, "at": self.at, **text}


@dataclass(frozen=True)
class SessionInfo:
    id: str
    opened_at: float  # wall clock
    workspace: str  # technicians need it; it is a random directory name, never a citizen's
    scans: int = 0
    downloads: int = 0
    print_jobs: int = 0
    idle_deadline: float | None = None  # wall clock time of the idle wipe, once the warning started


@dataclass(frozen=True)
class StationState:
    vehicle: str
    mode: Mode = "off"
    since: float = 0.0
    reason: str = ""
    power: PowerState = PowerState()
    modem: ModemState = ModemState()
    connectivity: ConnectivityState = ConnectivityState()
    displays: DisplaysState = DisplaysState()
    scanner: ScannerState = ScannerState()
    printer: PrinterState = PrinterState()
    button: ButtonState = ButtonState()
    audio: AudioState = AudioState()
    camera: CameraState = CameraState()
    media: MediaView = MediaView()  # the citizen's sticks: label, size, file system, never a file name
    inputs: InputsState = InputsState()
    handover: HandoverState = HandoverState()
    session: SessionInfo | None = None
    update: UpdateState = UpdateState()
    notices: tuple[Notice, ...] = field(default=())
    sessions_today: int = 0

    def with_notice(self, notice: Notice) -> StationState:
        kept = tuple(n for n in self.notices if n.topic != notice.topic)
        return dataclasses.replace(self, notices=(*kept, notice))

    def without_notice(self, topic: str) -> StationState:
        return dataclasses.replace(self, notices=tuple(n for n in self.notices if n.topic != topic))

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The API's view: one top-level key per part of the station."""
        session: dict[str, Any] | None = None
        if self.session is not None:
            session = dataclasses.asdict(self.session)
            if now is not None:
                session["age"] = round(now - self.session.opened_at, 1)
        return {
            "vehicle": self.vehicle,
            "station": {
                "state": self.mode,
                "since": self.since,
                "reason": self.reason,
                "sessions_today": self.sessions_today,
                **{k: v for k, v in messages.both(f"state.{self.mode}").items() if k != "key"},
            },
            "power": dataclasses.asdict(self.power),
            "modem": dataclasses.asdict(self.modem),
            "connectivity": dataclasses.asdict(self.connectivity),
            "displays": dataclasses.asdict(self.displays),
            "scanner": dataclasses.asdict(self.scanner),
            "printer": dataclasses.asdict(self.printer),
            "button": dataclasses.asdict(self.button),
            "audio": dataclasses.asdict(self.audio),
            "camera": dataclasses.asdict(self.camera),
            "media": self.media.to_json(),
            "inputs": dataclasses.asdict(self.inputs),
            "handover": dataclasses.asdict(self.handover),
            "session": session,
            "update": dataclasses.asdict(self.update),
            "notices": [n.to_json() for n in self.notices],
        }


@dataclass(frozen=True)
class StationChanged(Event):
    """The snapshot changed; ``previous`` lets subscribers see what did."""

    state: StationState
    previous: StationState
