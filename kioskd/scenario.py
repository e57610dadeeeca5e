"""Scenarios: timelines of events for the simulated van, played on the simulated clock.

A scenario file (``scenarios/*.toml``) lists steps at simulated times of day; each step is a station command
(``start``, ``next``, ``end-of-day``), a citizen's action (``print``, ``scan [adf] [all]``, ``privacy``, ``canary``:
files a citizen leaves behind, with a secret the runner looks for after the day) or a simulation verb
(``shore off``, ``soc 25``, ``printer jam`` …). The runner returns a summary and checks the file's expectations:
sessions, final state, refusals, the agent notices that must have shown, and always that no canary survived. It
drives the station only through its public commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kioskd.clock import SimClock
from kioskd.errors import DeviceError, KioskError, ScenarioError
from kioskd.hal import Event, Simulation
from kioskd.station import Station
from kioskd.station.snapshot import Mode, StationChanged

log = logging.getLogger(__name__)

STATION_COMMANDS = ("start", "next", "end-of-day", "retry-wipe")
CITIZEN_ACTIONS = ("print", "scan", "privacy", "canary")
# a one-page PDF: what a citizen prints (the content is irrelevant, the job's fate is what scenarios follow)
PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str
    do: str = Field(min_length=1)

    @field_validator("at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError("expected a time of day HH:MM or HH:MM:SS")
        return value

    def seconds(self) -> int:
        match = _TIME.match(self.at)
        assert match is not None
        h, m, s = (int(g or 0) for g in match.groups())
        return h * 3600 + m * 60 + s


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessions: int | None = Field(None, ge=0)
    final_state: Mode | None = None
    refusals: int | None = Field(None, ge=0)
    shutdown_reason: str | None = None
    notices: list[str] = Field(default_factory=list, description="catalogue keys that must have been shown")
    errors: int | None = Field(None, ge=0, description="steps the station answered with a device error")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    start: str = "08:00"
    step: list[Step]
    expect: Expect = Expect()
    end: str | None = Field(None, description="time of day the day ends (or earlier, once the station is off)")
    settle: float = Field(600.0, ge=0, description="simulated seconds allowed after the last step")

    def start_seconds(self) -> int:
        return Step(at=self.start, do="-").seconds()


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        scenario = Scenario.model_validate(data)
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}", where=str(path)) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ScenarioError(f"{err['msg']}", where=f"{path}: {key}") from None
    for index, step in enumerate(scenario.step):
        if step.seconds() < scenario.start_seconds():
            raise ScenarioError(
                f"step at {step.at} is before the start {scenario.start}", where=f"{path}: step[{index}]"
            )
    return scenario


def start_of_day(scenario: Scenario) -> float:
    """The simulated clock's wall time at t=0: today at the scenario's start, local time."""
    today = datetime.now().date()
    return datetime.combine(today, time()).timestamp() + scenario.start_seconds()


@dataclass
class Summary:
    name: str
    steps: int = 0
    refusals: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sessions: int = 0
    wipes_verified: int = 0
    wipes_failed: int = 0
    final_state: str = ""
    shutdown_reason: str = ""
    min_soc: float | None = None
    soc_at_shutdown: float | None = None
    notices: list[str] = field(default_factory=list)  # every catalogue key shown during the day, in order
    device_errors: list[str] = field(default_factory=list)  # actions a device refused (clear message, no crash)
    canaries: int = 0
    residues: list[str] = field(default_factory=list)  # files still holding a canary after the day: must be none
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}

    def text(self) -> str:
        lines = [
            f"scenario « {self.name} »: {'OK' if self.ok else 'ÉCHEC / FAILED'}",
            f"  steps played     {self.steps}",
            f"  sessions         {self.sessions} (wipes verified {self.wipes_verified}, failed {self.wipes_failed})",
            f"  refusals         {len(self.refusals)}",
            f"  lowest charge    {'-' if self.min_soc is None else f'{self.min_soc:.1f} %'} while running",
            f"  charge at stop   {'-' if self.soc_at_shutdown is None else f'{self.soc_at_shutdown:.1f} %'}",
            f"  final state      {self.final_state} ({self.shutdown_reason or '-'})",
            f"  notices shown    {', '.join(dict.fromkeys(self.notices)) or '-'}",
            f"  canaries         {self.canaries} planted, {len(self.residues)} found after the day",
        ]
        lines += [f"  ! {failure}" for failure in self.failures + self.errors]
        return "\n".join(lines)


async def play(scenario: Scenario, station: Station, simulation: Simulation | None) -> Summary:
    clock = station.clock
    summary = Summary(scenario.name)
    origin = scenario.start_seconds()
    t0 = clock.monotonic()

    canary = f"CANARY-{secrets.token_hex(8)}"

    def track_notices(event: Event) -> None:
        assert isinstance(event, StationChanged)
        before = {n.key for n in event.previous.notices}
        summary.notices += [n.key for n in event.state.notices if n.key not in before]

    def track_soc(event: Event | None = None) -> None:
        soc = station.state.power.soc
        if soc is None or (station.mode == "off" and summary.soc_at_shutdown is not None):
            return
        summary.min_soc = soc if summary.min_soc is None else min(summary.min_soc, soc)
        if station.mode == "off" and station.state.sessions_today:
            summary.soc_at_shutdown = soc

    unsubscribe = station.bus.subscribe(track_soc, StationChanged)
    unsubscribe_notices = station.bus.subscribe(track_notices, StationChanged)

    for step in sorted(scenario.step, key=Step.seconds):
        delay = (step.seconds() - origin) - (clock.monotonic() - t0)
        if delay > 0:
            await clock.sleep(delay)
        track_soc()
        words = shlex.split(step.do)
        log.info("scenario %s: %s", step.at, step.do)
        summary.steps += 1
        # the step's work (a scan, a wipe) takes real seconds: simulated time passes at the real pace meanwhile,
        # so a loaded machine does not turn it into simulated half-hours (the idle rule would then wipe the session)
        with clock.at_real_pace() if isinstance(clock, SimClock) else contextlib.nullcontext():
            try:
                summary.canaries += await _do(station, simulation, words, canary)
            except DeviceError as exc:
                summary.device_errors.append(f"{step.at} {step.do}: {exc.key or exc.what}")
            except KioskError as exc:
                summary.refusals.append(f"{step.at} {step.do}: {exc.key or exc.what}")
            except (KeyError, ValueError) as exc:
                summary.errors.append(f"{step.at} {step.do}: {exc}")
            await station.idle()
    if scenario.end is not None:
        end = Step(at=scenario.end, do="-").seconds() - origin
        while station.mode != "off" and clock.monotonic() - t0 < end:
            await clock.sleep(min(60.0, end - (clock.monotonic() - t0)))
    waited = 0.0
    while waited < scenario.settle and station.mode in ("starting", "wiping", "shutting_down"):
        await clock.sleep(5)
        waited += 5
        await station.idle()
    unsubscribe()
    unsubscribe_notices()
    if summary.canaries:
        places = [station.sessions.root.parent, station.sessions.journal_dir.parent]
        summary.residues = await asyncio.to_thread(find_canary, canary, places)
    summary.sessions = station.state.sessions_today
    summary.wipes_verified = sum(1 for w in station.wipes if w.verified)
    summary.wipes_failed = sum(1 for w in station.wipes if not w.verified)
    summary.final_state = station.mode
    summary.shutdown_reason = station.state.reason if station.mode == "off" else ""
    _check(scenario, summary)
    return summary


async def _do(station: Station, simulation: Simulation | None, words: list[str], canary: str) -> int:
    """One step; returns how many canaries it planted."""
    verb, args = words[0], words[1:]
    if verb in STATION_COMMANDS:
        await station.settle()  # e.g. an idle wipe the clock set off just before this step
        if verb == "start":
            await station.start()
        elif verb == "next":
            await station.next_citizen()
        elif verb == "end-of-day":
            await station.end_of_day()
        else:
            await station.retry_wipe()
        return 0
    if verb in CITIZEN_ACTIONS:
        return await _citizen(station, verb, args, canary)
    if simulation is None:
        raise ValueError(f"{verb!r} needs the simulated van")
    await simulation.apply(verb, args)
    return 0


async def _citizen(station: Station, verb: str, args: list[str], canary: str) -> int:
    if verb == "print":
        await station.print_document(PAGE_PDF + f"% {canary}\n".encode())
        return 1
    if verb == "scan":
        await station.scan("adf" if "adf" in args or "all" in args else "flatbed", None, "all" in args, None)
        return 0
    if verb == "privacy":
        await station.set_privacy()
        return 0
    session = station.session
    if session is None:
        raise ValueError("canary: no citizen session is open")
    ws = session.workspace

    def plant() -> None:  # what a citizen leaves: a download, a note in the app's home, a browser cookie file
        (ws.downloads / "avis-imposition.pdf").write_text(f"%PDF-1.4 {canary}")
        (ws.home / "notes.txt").write_text(canary)
        (ws.browser / "Cookies").write_bytes(canary.encode("utf-16-le"))

    await asyncio.to_thread(plant)
    return 3


def find_canary(canary: str, roots: list[Path]) -> list[str]:
    """Files under ``roots`` holding the canary (UTF-8 or UTF-16, as browsers store text); their paths, for the
    report: they are the test's own files, never a citizen's."""
    needles = (canary.encode(), canary.encode("utf-16-le"))
    hits = []
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(needle in data for needle in needles):
                    hits.append(str(path))
    return hits


def _check(scenario: Scenario, summary: Summary) -> None:
    expect = scenario.expect
    if expect.sessions is not None and summary.sessions != expect.sessions:
        summary.failures.append(f"expected {expect.sessions} sessions, got {summary.sessions}")
    if expect.final_state is not None and summary.final_state != expect.final_state:
        summary.failures.append(f"expected final state {expect.final_state}, got {summary.final_state}")
    if expect.refusals is not None and len(summary.refusals) != expect.refusals:
        summary.failures.append(f"expected {expect.refusals} refusals, got {len(summary.refusals)}")
    if expect.shutdown_reason is not None and summary.shutdown_reason != expect.shutdown_reason:
        summary.failures.append(
            f"expected shutdown reason {expect.shutdown_reason}, got {summary.shutdown_reason or 'none'}"
        )
    missing = [key for key in expect.notices if key not in summary.notices]
    if missing:
        summary.failures.append(f"expected notices not shown: {', '.join(missing)}")
    if expect.errors is not None and len(summary.device_errors) != expect.errors:
        summary.failures.append(f"expected {expect.errors} device errors, got {len(summary.device_errors)}")
    if summary.residues:
        summary.failures.append(f"{len(summary.residues)} file(s) still hold a citizen's canary")
    if summary.wipes_failed:
        summary.failures.append(f"{summary.wipes_failed} wipe(s) not verified")
