"""The wipe's handlers, as a registry: each handler removes one kind of trace of a session and is added by
registering it under a stage (``WipeHandlers.register``), never by editing the wipe. Stages run in order (the
session app first, so nothing writes while we clean; then the workspace's layout is checked, so no handler meets a
folder swapped for a link; then every handler concurrently; then the workspace itself); each handler reports a
verdict and its time (and may return a note, counts only), retried once on failure, and never crashes the wipe.
Nothing here logs or reports a path inside a workspace, and nothing follows a link out of it.

Fault injection for the crash tests: ``KIOSKD_FAULT_WIPE=<stage>`` makes the daemon kill itself (SIGKILL) right
after that stage: journal, app, layout, handlers, workspace, verified."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kioskd.errors import WipeError
from kioskd.hal import JOB_FINISHED, Clock
from kioskd.session import workspace as ws_ops

if TYPE_CHECKING:
    from kioskd.hal import Devices
    from kioskd.session.app import SessionApp
    from kioskd.session.receipt import WipeReceipt

log = logging.getLogger(__name__)

WipeReason = Literal["next", "idle", "power", "end_of_day", "travel", "recovery", "retry"]
Stage = Literal["app", "layout", "handlers", "workspace"]
STAGES: tuple[Stage, ...] = ("app", "layout", "handlers", "workspace")
TAMPERED = " tampered"  # the layout verdict's note: "<count> tampered"


@dataclass(frozen=True)
class WipeContext:
    """What a handler may touch: the session's id and workspace root, the devices, the clock, the session app."""

    session_id: str
    root: Path
    reason: WipeReason
    devices: Devices
    clock: Clock
    app: SessionApp
    as_user: tuple[int, int] | None  # the session app's user, who owns the workspace's files
    print_grace: float  # seconds the print handler waits for the citizen's paper (0 for a recovery)


Handler = Callable[[WipeContext], Awaitable[str | None]]  # an optional note for the receipt (counts only)


@dataclass(frozen=True)
class HandlerVerdict:
    name: str
    ok: bool
    seconds: float
    reason: str = ""  # why it failed, in a technician's words; never a citizen's file name
    note: str = ""  # what it found on the way (the layout's tampering), counts only


@dataclass
class WipeOutcome:
    session: str
    reason: WipeReason
    started: float
    finished: float = 0.0
    verdicts: list[HandlerVerdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what verification found
    journal: str = ""  # why the wipe journal could not be written ("" when it was): the disk is full …
    receipt: WipeReceipt | None = None  # for the recorder; set once the wipe is over

    @property
    def verified(self) -> bool:
        return all(v.ok for v in self.verdicts) and not self.problems

    @property
    def tampered(self) -> int:
        """What the layout stage found not as kioskd made it (its note: ``"<count> tampered"``)."""
        return sum(int(v.note.split()[0]) for v in self.verdicts if v.note.endswith(TAMPERED))

    def failed_handlers(self) -> list[str]:
        return [v.name for v in self.verdicts if not v.ok] + (["verification"] if self.problems else [])


class WipeHandlers:
    """The registry: stage → handlers in the order they were registered (the receipt lists them in that order)."""

    def __init__(self) -> None:
        self._stages: dict[Stage, dict[str, Handler]] = {stage: {} for stage in STAGES}

    def register(self, name: str, handler: Handler, stage: Stage = "handlers") -> None:
        if any(name in handlers for handlers in self._stages.values()):
            raise ValueError(f"a wipe handler named {name!r} is already registered")
        self._stages[stage][name] = handler

    def stages(self) -> list[tuple[Stage, dict[str, Handler]]]:
        return [(stage, dict(handlers)) for stage, handlers in self._stages.items()]

    def names(self) -> list[str]:
        return [name for handlers in self._stages.values() for name in handlers]


async def run(name: str, handler: Handler, context: WipeContext, retries: int) -> HandlerVerdict:
    """One handler with its retries: its verdict and time, whatever it raises."""
    clock = context.clock
    start = clock.monotonic()
    reason = ""
    for _attempt in range(1 + retries):
        try:
            note = await handler(context)
            return HandlerVerdict(name, True, round(clock.monotonic() - start, 4), note=note or "")
        except Exception as exc:  # a handler's failure is a verdict, never a crash
            reason = f"{type(exc).__name__}: {_safe(exc)}"
    return HandlerVerdict(name, False, round(clock.monotonic() - start, 4), reason)


async def run_stage(handlers: dict[str, Handler], context: WipeContext, retries: int) -> list[HandlerVerdict]:
    return list(await asyncio.gather(*(run(name, handler, context, retries) for name, handler in handlers.items())))


# ----------------------------------------------------------------------------------------------- the handlers
async def stop_app(context: WipeContext) -> None:
    await context.app.stop(context.session_id)


async def layout(context: WipeContext) -> str | None:
    """The workspace as kioskd made it: a folder swapped for a link (or a file, a FIFO, a device node) is unlinked
    without following it, and counted on the receipt; the handlers after it then meet only real folders."""
    tampered = await asyncio.to_thread(ws_ops.check_layout, context.root)
    if not tampered:
        return None
    log.warning("session %s: %d part(s) of the workspace were tampered with", context.session_id, tampered)
    return f"{tampered}{TAMPERED}"


def clear_folder(sub: str) -> Handler:
    """Empty one folder of the workspace (``browser``, ``downloads``, ``scans``)."""

    async def clear(context: WipeContext) -> None:
        await ws_ops.clear(context.root / sub, context.as_user)

    return clear


async def print_jobs(context: WipeContext) -> None:
    """Let the citizen's paper come out (the grace), then cancel and purge every job of the session."""
    printer, session_id = context.devices.printer, context.session_id
    waited = 0.0
    while waited < context.print_grace:
        jobs = await printer.jobs(session_id)
        if all(job.state in JOB_FINISHED for job in jobs):
            break
        await context.clock.sleep(1.0)
        waited += 1.0
    await printer.cancel_jobs(session_id)
    await printer.purge_jobs(session_id)


async def clipboard(context: WipeContext) -> None:
    await context.devices.displays.clear_clipboard()


async def audio(context: WipeContext) -> None:
    await context.devices.audio.reset()


async def camera(context: WipeContext) -> None:
    await context.devices.camera.reset()


async def media(context: WipeContext) -> None:
    """The citizen's sticks: unmounted (lazily when a process still holds a file: it is detached at once and its
    driver stopped), then verified: nothing mounted under the workspace's ``media`` folder, no process holding a
    file of a stick. A stick pulled out without eject was detached when it went (the media policy told the agent)."""
    sticks = context.devices.media
    if sticks is None:
        return
    # a holder left (the session app is stopped by now) makes the unmount lazy and its driver is stopped at once:
    # the holder's descriptor then reaches nothing of the stick
    await sticks.release(context.session_id)
    left = await asyncio.to_thread(ws_ops.mounts_under, context.root / "media")
    if left:
        raise WipeError(f"{left} stick mount(s) left in the workspace", where="media")
    if held := sticks.holders(context.session_id):
        raise WipeError(f"{held} process(es) still hold a file of a mounted stick", where="media")


async def remove_workspace(context: WipeContext) -> None:
    await ws_ops.remove(context.root, context.as_user)


def standard_handlers() -> WipeHandlers:
    """Every trace a session leaves on the station today; the citizen's USB stick registers itself the same way."""
    handlers = WipeHandlers()
    handlers.register("app", stop_app, "app")
    handlers.register("layout", layout, "layout")
    for sub in ("browser", "downloads", "scans"):
        handlers.register(sub, clear_folder(sub))
    handlers.register("print_jobs", print_jobs)
    handlers.register("clipboard", clipboard)
    handlers.register("audio", audio)
    handlers.register("camera", camera)
    handlers.register("media", media)
    handlers.register("workspace", remove_workspace, "workspace")
    return handlers


def fault(stage: str) -> None:
    if os.environ.get("KIOSKD_FAULT_WIPE") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _safe(exc: Exception) -> str:
    """An exception's message without paths (they could name a citizen's file)."""
    if isinstance(exc, OSError):
        return exc.strerror or "OS error"
    return str(exc).split("/", 1)[0][:200]
