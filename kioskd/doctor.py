"""``kioskctl doctor``: the technician's self-test of a van against its installed profile.

One line per device kind and per system fact, each with a verdict (ok, warn, fail, info), what the device reports,
and what to do (from the message catalogue). It reads the devices through their contracts only; the active probes
(a test scan, the LED, "press the button now") run only when no citizen is in session. ``fail`` or ``warn`` on any
line makes the exit status non-zero. A backend's own checks (the CUPS server's privacy settings) come from its
``diagnose()``: the doctor knows no backend by name."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kioskd import messages
from kioskd.clock import CLOCK_FLOOR
from kioskd.errors import KioskError
from kioskd.hal import Devices, Diagnosable, DriverKind, ScanRequest, Verdict
from kioskd.records.store import Store

DISK_FLOOR = 200 * 1024 * 1024  # bytes free in the state directory (receipts, store, journal)


@dataclass(frozen=True)
class Check:
    name: str  # power, modem, … , clock, disk, runtime, cups, app_user
    verdict: Verdict
    detail: str = ""  # what the device or system reports (technical, no citizen data)
    key: str = ""  # catalogue entry saying what to do, when something is to do
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        if self.key:
            body["action"] = messages.both(self.key, **self.params)
        return body


@dataclass
class DoctorInputs:
    """What the doctor looks at: the station's devices, the press waiter, and the places on disk."""

    devices: Devices
    in_session: bool
    runtime_dir: Path
    state_dir: Path
    wall: Callable[[], float]
    wait_for_press: Callable[[float], Awaitable[bool]]
    probe_internet: Callable[[], Awaitable[str]]  # the connectivity policy's probe: "ok" or what failed
    printer_driver: str = ""  # the printer's backend name (the doctor no longer needs it: its backend diagnoses)
    app_user: str | None = None
    store: Store | None = None


async def run(inputs: DoctorInputs, button_seconds: float = 0.0) -> list[Check]:
    """Every check, devices first (each guarded: a device that raises is a ``fail`` line, not a crash)."""
    d = inputs.devices
    probes: list[tuple[str, Callable[[], Awaitable[Check]]]] = [
        ("power", lambda: _power(d)),
        ("modem", lambda: _modem(d, inputs.probe_internet)),
        ("displays", lambda: _displays(d)),
        ("scanner", lambda: _scanner(d, inputs.in_session)),
        ("printer", lambda: _printer(d)),
        ("button", lambda: _button(d, inputs, button_seconds)),
        ("audio", lambda: _audio(d)),
        ("camera", lambda: _camera(d, inputs.in_session)),
        ("inputs", lambda: _inputs(d)),
    ]
    checks = []
    for name, probe in probes:
        try:
            checks.append(await asyncio.wait_for(probe(), timeout=max(30.0, button_seconds + 10)))
        except (KioskError, OSError, TimeoutError) as exc:
            checks.append(Check(name, "fail", f"{type(exc).__name__}: {exc}", "doctor.device_error"))
    checks += await asyncio.to_thread(_system, inputs)
    checks += _store(inputs.store)
    for kind, device in d.all():
        checks += await _diagnoses(kind, device)
    checks += await asyncio.to_thread(_app_user, inputs)
    return checks


def passed(checks: list[Check]) -> bool:
    return all(check.verdict in ("ok", "info") for check in checks)


# ------------------------------------------------------------------------------------------- devices
async def _diagnoses(kind: DriverKind, device: object) -> list[Check]:
    """A backend's own findings (``Diagnosable``), if it has any; one that raises is a ``fail`` line."""
    if not isinstance(device, Diagnosable):
        return []
    try:
        found = await asyncio.wait_for(device.diagnose(), timeout=30.0)
    except (KioskError, OSError, TimeoutError) as exc:
        return [Check(kind, "fail", f"{type(exc).__name__}: {exc}", "doctor.device_error")]
    return [Check(f.name, f.verdict, f.detail, f.key, dict(f.params)) for f in found]


async def _power(d: Devices) -> Check:
    s = d.power.state
    if not s.available:
        return Check("power", "fail", "no reading", "doctor.power.no_reading")
    source = "shore" if s.shore else "battery"
    detail = f"{source}, soc {_fmt(s.soc, '%')}, {_fmt(s.voltage, ' V')}, time-to-go {_fmt(s.time_to_go, ' s')}"
    if s.soc is not None and s.soc < 20 and not s.shore:
        return Check("power", "warn", detail, "doctor.power.low", {"soc": round(s.soc)})
    return Check("power", "ok", detail)


async def _modem(d: Devices, probe: Callable[[], Awaitable[str]]) -> Check:
    s = d.modem.state
    if not s.present:
        return Check("modem", "fail", "absent", "doctor.modem.absent")
    detail = f"{s.registration}, {s.technology}, {s.operator or '-'}, signal {_fmt(s.signal, '%')}"
    if s.registration not in ("home", "roaming"):
        return Check("modem", "fail", detail, "doctor.modem.unregistered", {"registration": s.registration})
    outcome = await probe()  # the profile's own probe (HTTP, DNS): a bearer up is not the Internet
    if outcome != "ok":
        return Check("modem", "warn", f"{detail}, internet probe: {outcome}", "doctor.modem.no_internet")
    return Check("modem", "ok", detail + ", internet reachable")


async def _displays(d: Devices) -> Check:
    s = d.displays.state
    outputs = {o.role: o for o in s.outputs if o.role in ("agent", "citizen")}
    detail = ", ".join(
        f"{o.role} {o.name} {f'{o.width}x{o.height}' if o.connected else 'unplugged'}" for o in s.outputs
    )
    for role in ("agent", "citizen"):
        if role not in outputs or not outputs[role].connected:
            return Check("displays", "fail", detail or "no output", f"doctor.displays.{role}_missing")
    return Check("displays", "ok", detail)


async def _scanner(d: Devices, in_session: bool) -> Check:
    s = d.scanner.state
    if not s.present:
        return Check("scanner", "fail", "absent", "doctor.scanner.absent")
    if s.status == "fault":
        return Check("scanner", "fail", f"{s.name}: {s.fault}", "doctor.scanner.fault", {"fault": s.fault})
    if in_session:
        return Check("scanner", "info", f"{s.name}: {s.status}", "doctor.busy")
    # the test scan: the flatbed, grey, at the lowest resolution the pipeline accepts (a small image, soon done)
    result = await d.scanner.scan(ScanRequest(source="flatbed", resolution=150, mode="gray"))
    if result.fault or not result.pages:
        return Check("scanner", "fail", f"{s.name}: test scan {result.fault or 'gave no page'}", "doctor.scanner.test")
    page = result.pages[0].pixels
    return Check("scanner", "ok", f"{s.name}: test scan {page.shape[1]}x{page.shape[0]} px")


async def _printer(d: Devices) -> Check:
    s = d.printer.state
    if not s.present:
        return Check("printer", "fail", "absent", "doctor.printer.absent")
    detail = f"{s.name}: {s.status}" + (f" ({', '.join(s.reasons)})" if s.reasons else "")
    if s.status in ("stopped", "unavailable") or s.reasons:
        return Check("printer", "fail", detail, "doctor.printer.fault", {"detail": detail})
    return Check("printer", "ok", detail)


async def _button(d: Devices, inputs: DoctorInputs, seconds: float) -> Check:
    s = d.button.state
    if not s.present:
        return Check("button", "fail", "absent", "doctor.button.absent")
    if inputs.in_session:
        return Check("button", "info", f"LED {s.led}", "doctor.busy")
    if seconds <= 0:
        return Check("button", "info", f"LED {s.led}", "doctor.button.untested")
    before = s.led
    await d.button.set_led("fast")  # the LED says "press me" (fast: needs attention)
    try:
        pressed = await inputs.wait_for_press(seconds)
    finally:
        await d.button.set_led(before)
    if not pressed:
        return Check("button", "fail", f"no press in {seconds:g} s", "doctor.button.no_press", {"seconds": seconds})
    return Check("button", "ok", "press received, LED driven")


async def _audio(d: Devices) -> Check:
    s = d.audio.state
    if not s.present or not s.sink:
        return Check("audio", "warn", "no output device", "doctor.audio.absent")
    detail = f"out {s.sink}, in {s.source or '-'}, volume {_fmt(s.volume, '%')}"
    if not s.source:
        return Check("audio", "warn", detail, "doctor.audio.no_mic")
    return Check("audio", "ok", detail)


async def _inputs(d: Devices) -> Check:
    """The citizen's own devices the profile names: found or not (a van without any has the citizen watch)."""
    s = d.inputs.state
    citizen = [device for device in s.devices if device.side == "citizen"]
    if s.detail and not citizen:
        return Check("inputs", "info" if not s.devices else "warn", s.detail, "doctor.inputs.missing")
    live = [device.name for device in citizen if device.enabled]
    return Check("inputs", "ok", f"{len(citizen)} citizen device(s), {len(live)} enabled")


async def _camera(d: Devices, in_session: bool) -> Check:
    s = d.camera.state
    if not s.present:
        return Check("camera", "warn", "absent", "doctor.camera.absent")
    if in_session:  # the citizen's video call may have it open: no health check then
        return Check("camera", "ok", s.name or "present")
    h = await d.camera.health()  # opens it, grabs a few frames, releases it
    if h.in_use:  # another program has it (a call, even between sessions): not checked, not a fault
        return Check("camera", "ok", f"{s.name or 'camera'}: in use by another program")
    detail = f"{s.name}: {h.width}x{h.height}, {h.frames} frames, brightness {h.brightness:g}"
    if h.fault is not None:
        return Check("camera", "fail", detail, h.fault)
    return Check("camera", "ok", detail)


# ------------------------------------------------------------------------------------------- the PC itself
def _system(inputs: DoctorInputs) -> list[Check]:
    checks = []
    now = inputs.wall()
    year = 1970 + int(now // 31_557_600)
    checks.append(
        Check("clock", "ok", f"year {year}")
        if now >= CLOCK_FLOOR
        else Check("clock", "fail", f"year {year}", "doctor.clock.wrong", {"year": year})
    )
    free = shutil.disk_usage(inputs.state_dir).free
    detail = f"{free / 1_048_576:.0f} MiB free in {inputs.state_dir}"
    checks.append(
        Check("disk", "ok", detail)
        if free >= DISK_FLOOR
        else Check("disk", "fail", detail, "doctor.disk.full", {"path": str(inputs.state_dir)})
    )
    checks.append(
        Check("runtime", "ok", f"{inputs.runtime_dir} on tmpfs")
        if _on_tmpfs(inputs.runtime_dir)
        else Check(
            "runtime",
            "fail",
            f"{inputs.runtime_dir} on disk",
            "doctor.runtime.not_tmpfs",
            {"path": str(inputs.runtime_dir)},
        )
    )
    return checks


def _store(store: Store | None) -> list[Check]:
    """The store: set aside this run (unreadable), refusing writes (receipts waiting in memory), retention paused."""
    if store is None:
        return []
    checks = []
    if store.unwritable:
        detail = f"{store.unwritable}; {store.waiting} receipt(s) waiting"
        checks.append(Check("store", "fail", detail, "doctor.store.unwritable", {"problem": store.unwritable}))
    elif store.set_aside is not None:
        detail = f"{store.set_aside.what}: set aside as {store.set_aside.path}"
        checks.append(Check("store", "warn", detail, "doctor.store.set_aside", {"path": store.set_aside.path}))
    else:
        checks.append(Check("store", "ok", str(store.path)))
    if store.retention_paused:
        why = store.retention_paused
        checks.append(Check("retention", "warn", why, "doctor.retention.paused", {"why": why}))
    return checks


def _app_user(inputs: DoctorInputs) -> list[Check]:
    if not inputs.app_user:
        return []
    try:
        pwd.getpwnam(inputs.app_user)
    except KeyError:
        return [Check("app_user", "fail", "missing", "doctor.app_user.missing", {"user": inputs.app_user})]
    return [Check("app_user", "ok", inputs.app_user)]


def _on_tmpfs(path: Path) -> bool:
    """Whether ``path`` lives on a tmpfs: the filesystem of the longest mount point containing it."""
    target = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                mount_point = fields[4]
                fs = fields[fields.index("-") + 1]
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, fs
    except OSError:
        return False
    return kind == "tmpfs"


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.0f}{unit}"
