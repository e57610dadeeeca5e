"""The station: one state machine (off, starting, ready, in_session, wiping, travelling, shutting_down) that folds
device events into the snapshot and turns button presses, agent commands and policies' requests into transitions.
It is the host of the policies (``kioskd.policies``): it hands each the events it declared and calls their hooks;
the rules themselves (power, connectivity, idle, displays, printing, scanning, records) live there, not here. It
knows hardware only through ``kioskd.hal`` contracts; illegal transitions are refused with a catalogue reason."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from kioskd.bus import EventBus
from kioskd.doctor import DoctorInputs
from kioskd.errors import KioskError, StorageError, TransitionRefused, WipeError
from kioskd.hal import (
    ButtonPressed,
    Clock,
    DeviceFault,
    Devices,
    Event,
    InhibitLock,
    LedPattern,
    ScanMode,
    ScanSource,
    ShutdownPrepared,
    StateEvent,
)
from kioskd.policies import roster
from kioskd.policies.base import Action, Guarded, Policy
from kioskd.policies.connectivity import ConnectivityPolicy, ConnectivityState
from kioskd.policies.displays import DisplaysPolicy
from kioskd.policies.handover import HandoverPolicy, HandoverState
from kioskd.policies.media import MediaPolicy
from kioskd.policies.power import PowerPolicy
from kioskd.policies.printing import PrintingPolicy
from kioskd.policies.scanning import ScanningPolicy
from kioskd.profile import Profile
from kioskd.records.store import Store
from kioskd.session import Session, Sessions, WipeOutcome, WipeReason
from kioskd.station.led import led_pattern
from kioskd.station.snapshot import Level, Mode, Notice, SessionInfo, StationChanged, StationState

log = logging.getLogger(__name__)
P = TypeVar("P", bound=Policy)

TRANSITIONS: dict[Mode, frozenset[Mode]] = {
    "off": frozenset({"starting"}),
    # starting may find a pending wipe (crash or power cut) and must finish it before ready
    "starting": frozenset({"ready", "wiping", "travelling", "shutting_down", "off"}),
    "ready": frozenset({"in_session", "travelling", "shutting_down"}),
    # a session only ever ends through a wipe
    "in_session": frozenset({"wiping"}),
    # a failed wipe stays in wiping; only a verified one leaves it (a power shutdown leaves it, the journal stays)
    "wiping": frozenset({"ready", "travelling", "shutting_down"}),
    "travelling": frozenset({"ready", "shutting_down"}),
    "shutting_down": frozenset({"off"}),
}


def check_transition(current: Mode, target: Mode) -> None:
    """Raise ``TransitionRefused`` unless ``current → target`` is in the table."""
    if target not in TRANSITIONS[current]:
        raise TransitionRefused(
            f"{current} → {target} is not a transition of the station",
            where="station",
            key="refused.transition",
            params={"current": current, "target": target},
        )


def refusal_params(exc: KioskError, mode: str) -> dict[str, Any]:
    """Parameters for any refusal message (notice or API error): the state, plus what the refusal carries."""
    return {"state": mode, "current": mode, "target": "?", **exc.params}


class _Outlet:
    """The station as its policies see it (``kioskd.policies.base.Outlet``): nothing of the machine's commands."""

    def __init__(self, station: Station) -> None:
        self._station = station

    @property
    def state(self) -> StationState:
        return self._station.state

    @property
    def session(self) -> Session | None:
        return self._station.session

    def notice(self, topic: str, key: str, level: Level = "info", **params: Any) -> None:
        self._station.notice(topic, key, level, **params)

    def clear_notice(self, topic: str) -> None:
        self._station.clear_notice(topic)

    def show(self, **parts: Any) -> None:
        self._station._set(dataclasses.replace(self._station.state, **parts))

    def publish(self, event: Event) -> None:
        self._station.publish(event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._station.spawn(coro)

    def request(self, action: Action) -> None:
        self._station._request(action)

    def touch(self) -> None:
        self._station.touch()

    def busy(self) -> bool:
        return any(policy.busy() for policy in self._station.policies)

    async def snapshot(self) -> StationState:
        return await self._station.snapshot()


class Station:
    def __init__(
        self,
        profile: Profile,
        devices: Devices,
        bus: EventBus,
        clock: Clock,
        sessions: Sessions,
        store: Store | None = None,
        policies: Sequence[Policy] | None = None,
    ) -> None:
        """``policies`` defaults to the standard list (``kioskd.policies.roster``), with the recorder when there
        is a ``store`` (the API serves the store's figures through ``station.store``)."""
        self.profile = profile
        self.devices = devices
        self.bus = bus
        self.clock = clock
        self.sessions = sessions
        self.store = store
        self._state = StationState(vehicle=profile.vehicle.id, since=clock.wall())
        self.session: Session | None = None
        self.last_wipe: WipeOutcome | None = None
        # the last wipes, for scenarios and tests (bounded: the store keeps every receipt, a van runs for years)
        self.wipes: deque[WipeOutcome] = deque(maxlen=500)
        if policies is None:
            policies = roster.standard(profile, devices, clock, store)
        self.policies: tuple[Policy, ...] = tuple(policies)
        # the policies that own one of the station's commands (the API and the CLI call the station)
        self.power = self._policy(PowerPolicy)
        self.connectivity = self._policy(ConnectivityPolicy)
        self._displays = self._policy(DisplaysPolicy)
        self._handover = self._policy(HandoverPolicy)
        if "inputs" not in sessions.handlers.names():  # the citizen's devices off, the agent's back, at every wipe
            sessions.handlers.register("inputs", self._handover.wipe)
        self._printing = self._policy(PrintingPolicy)
        self._scanning = self._policy(ScanningPolicy)
        self._media = next((p for p in self.policies if isinstance(p, MediaPolicy)), None)  # tests may leave it out
        self._engine = False  # the ignition, as the power policy last reported it
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._press_waiters: list[asyncio.Future[bool]] = []
        self._led: LedPattern = "off"  # the pattern last sent to the button's LED
        # held from a session's opening until its wipe is over: a shutdown started by anyone waits for the wipe
        self._session_lock: InhibitLock | None = None
        self._unsubscribe = bus.subscribe(self._on_event)
        outlet = _Outlet(self)
        for policy in self.policies:
            policy.attach(outlet)
        for policy in self.policies:
            policy.start()

    def _policy(self, kind: type[P]) -> P:
        for policy in self.policies:
            if isinstance(policy, kind):
                return policy
        raise ValueError(f"the station needs a {kind.__name__} among its policies")

    # ------------------------------------------------------------------------------------------- snapshot
    @property
    def state(self) -> StationState:
        return self._state

    @property
    def mode(self) -> Mode:
        return self._state.mode

    def _set(self, new: StationState) -> None:
        if new == self._state:
            return
        previous, self._state = self._state, new
        self.bus.publish(StationChanged(new, previous))
        led = led_pattern(new)
        if led != self._led:
            self._led = led
            self._spawn(self.devices.button.set_led(led))

    def notice(self, topic: str, key: str, level: Level = "info", **params: Any) -> None:
        """Show the agent a notice (one per topic); ``clear_notice`` removes it."""
        self._set(self._state.with_notice(Notice(topic, key, level, tuple(sorted(params.items())), self.clock.wall())))

    def clear_notice(self, topic: str) -> None:
        self._set(self._state.without_notice(topic))

    async def snapshot(self) -> StationState:
        """The snapshot with the session's file counts read now (counts only; the walk runs off the loop)."""
        session = self.session
        if session is not None:
            counts = await asyncio.to_thread(session.counts)
            if self.session is not session or self._state.session is None:
                return self._state  # the session ended while we counted
            info = dataclasses.replace(
                self._state.session,
                print_jobs=len(session.job_ids),
                scans=counts["scans"],
                downloads=counts["downloads"],
            )
            self._set(dataclasses.replace(self._state, session=info))
        return self._state

    def _go(self, target: Mode, reason: str) -> None:
        check_transition(self.mode, target)
        log.info("station %s → %s (%s)", self.mode, target, reason)
        self._set(dataclasses.replace(self._state, mode=target, since=self.clock.wall(), reason=reason))

    # ------------------------------------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, StateEvent):
            self._set(dataclasses.replace(self._state, **{event.device: vars(event)["state"]}))
        elif isinstance(event, ButtonPressed):
            if self._press_waiters:  # the doctor's "press the button now": not a command
                for waiter in self._press_waiters:
                    if not waiter.done():
                        waiter.set_result(True)
            else:
                self._spawn(self.press(long=event.long))
        elif isinstance(event, ShutdownPrepared):
            self._spawn(self.host_shutdown("shutdown"))
        elif isinstance(event, DeviceFault):
            topic = f"device.{event.kind}.{event.fault}"  # one notice per fault: clearing one keeps the others
            if event.cleared:
                self.clear_notice(topic)
            else:
                self.notice(topic, event.fault, "warning")
        for policy in self.policies:
            if isinstance(event, policy.events):
                policy.on_event(event)

    def _request(self, action: Action) -> None:
        """A policy's request, run in the background like a button press."""
        if action == "travel":
            self._engine = True
            self._spawn(self.travel())
        elif action == "arrive":
            self._engine = False
            self._spawn(self.arrive())
        elif action == "shutdown":
            self._spawn(self.end_of_day(reason="power"))
        elif action == "idle_wipe":
            self._spawn(self._idle_wipe())

    def _veto(self, action: Guarded) -> None:
        for policy in self.policies:
            refusal = policy.veto(action)
            if refusal is not None:
                raise refusal

    async def _moving(self, target: Mode) -> None:
        for policy in self.policies:
            await policy.moving(target)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._spawn(coro)

    # ------------------------------------------------------------------------------------------- policies' commands
    @property
    def stop(self) -> str | None:
        """The stop the van stands at (named by the agent or found by GPS), for the office's figures."""
        return self._state.connectivity.stop

    def set_stop(self, name: str | None) -> ConnectivityState:
        """The agent names the stop the van stands at (``kioskctl stop NAME``), for the signal atlas."""
        return self.connectivity.set_stop(name)

    def touch(self) -> None:
        """Someone is working with the citizen: the idle countdown starts again."""
        for policy in self.policies:
            policy.touched()

    async def scan(
        self, source: ScanSource, mode: ScanMode | None, multi: bool, destination: str | None
    ) -> dict[str, Any]:
        """One scan job into the current session's scans folder, fitted to the destination's size budget."""
        return await self._scanning.scan(source, mode, multi, destination)

    async def scans(self) -> list[dict[str, Any]]:
        """The current session's scans (names kioskd gave them, sizes) — for the session's own view only."""
        return await self._scanning.scans()

    async def media_export(self, names: list[str] | None) -> dict[str, Any]:
        """The session's scans (``names``, or all) onto the citizen's stick (``MediaPolicy``)."""
        return await self._media_policy().export(names)

    async def media_eject(self) -> dict[str, Any]:
        return await self._media_policy().eject()

    def _media_policy(self) -> MediaPolicy:
        if self._media is None:
            raise TransitionRefused("no media policy", where="media", key="media.none")
        return self._media

    async def print_document(self, document: bytes) -> int:
        """Print a document of the current session under an anonymous title; returns the job id."""
        return await self._printing.print_document(document)

    async def set_privacy(self, on: bool | None = None) -> bool:
        """The privacy curtain on, off or toggled (``None``); returns its new state (``DisplaysPolicy``). Before the
        curtain hides the citizen screen, the citizen's devices go dark (``HandoverPolicy``)."""
        if (not self._state.displays.curtain) if on is None else on:
            await self._handover.end_all()
        return await self._displays.set_privacy(on)

    async def set_handover(self, on: bool | None = None) -> HandoverState:
        """ "Main au citoyen" on, off or toggled (``None``) (``HandoverPolicy``)."""
        return await self._handover.set_handover(on)

    async def set_confidential(self, on: bool | None = None) -> HandoverState:
        """ "Saisie confidentielle" on, off or toggled (``None``) (``HandoverPolicy``)."""
        return await self._handover.set_confidential(on)

    # ------------------------------------------------------------------------------------------- background
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: _close_unstarted(coro))

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Background commands (button, policies) report refusals as notices instead of raising."""
        try:
            await coro
        except TransitionRefused as exc:
            self.notice("station", exc.key or "refused.transition", "warning", **refusal_params(exc, self.mode))
        except WipeError as exc:
            log.warning("%s", exc)  # its notice (wipe.failed) is already up
        except Exception:
            log.exception("station command failed")

    async def settle(self) -> None:
        """Wait until no command runs at all, the lock included (a scenario is a timeline, not an agent's double
        press: its next step waits for the previous one's consequences instead of being refused as busy)."""
        await self.idle()
        async with self._lock:
            pass

    async def idle(self) -> None:
        """Wait until every background command has finished (tests, scenario steps, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def doctor_inputs(self) -> DoctorInputs:
        return DoctorInputs(
            devices=self.devices,
            in_session=self.mode == "in_session",
            runtime_dir=self.sessions.root.parent,
            state_dir=self.sessions.journal_dir.parent,
            wall=self.clock.wall,
            wait_for_press=self.wait_for_press,
            probe_internet=self.connectivity.probe,
            printer_driver=self.profile.devices["printer"].driver,
            app_user=self.profile.station.app_user,
            store=self.store,
        )

    async def wait_for_press(self, seconds: float) -> bool:
        """True when the button is pressed within ``seconds`` (real time: a technician is pressing it); that press
        is swallowed, it starts nothing."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._press_waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            return False
        finally:
            self._press_waiters.remove(waiter)

    # ------------------------------------------------------------------------------------------- commands
    async def press(self, long: bool) -> None:
        """The one button: short = start / next citizen (or the end of a confidential entry), long = end of day."""
        if not long and self._handover.ends_on_press():
            await self._handover.set_confidential(False)
        elif long:
            await self.end_of_day()
        elif self.mode == "off":
            await self.start()
        else:
            await self.next_citizen()

    def _refuse_if_busy(self) -> None:
        """An agent's command while another runs is refused, not queued: a double press must not wipe the session
        the first press just opened."""
        if self._lock.locked():
            raise TransitionRefused("another command is running", where="station", key="refused.busy")

    async def start(self) -> None:
        self._refuse_if_busy()
        if self.mode != "off":
            raise TransitionRefused("the station is already running", where="station", key="refused.start.not_off")
        self._veto("start")
        async with self._lock:
            self._go("starting", "start")
            await self._moving("starting")
            pending = self.sessions.pending()
            if pending:
                await self._wipe_all(pending, "recovery")  # settles, or stays in wiping until someone acts
            else:
                self._settle_after_wipe()

    def _settle_after_wipe(self) -> None:
        """Where the station goes once nothing of a citizen is left: ready, or travelling if the engine runs."""
        if self._engine:
            self._go("travelling", "ignition")
            self._spawn(self._moving("travelling"))
        else:
            self._go("ready", "wiped" if self.mode == "wiping" else "started")

    async def next_citizen(self) -> None:
        self._refuse_if_busy()
        mode = self.mode
        if mode == "wiping":
            raise TransitionRefused("a wipe is running", where="station", key="refused.next.wiping")
        if mode == "travelling":
            raise TransitionRefused("the vehicle is moving", where="station", key="refused.next.travelling")
        if mode not in ("ready", "in_session"):
            raise TransitionRefused(f"not possible while {mode}", where="station", key="refused.next.state")
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("next")
                if self._is("wiping"):
                    failed = ", ".join(self.last_wipe.failed_handlers()) if self.last_wipe else "?"
                    raise WipeError(
                        f"the wipe did not complete ({failed})",
                        where="wipe",
                        action="kioskctl wipe --retry",
                        key="wipe.failed",
                        params={"handler": failed},
                    )
                if not self._is("ready"):
                    return  # the engine started meanwhile: travelling
            try:
                await self._open_session()
            except StorageError as exc:  # the last citizen's data is gone; the agent learns why no new one opens
                self.notice("journal", exc.key, "error", **exc.params)
                raise
            self.clear_notice("journal")

    def _is(self, *modes: Mode) -> bool:
        """The mode now (after an await, unlike a narrowed ``self.mode``)."""
        return self.mode in modes

    async def _open_session(self) -> None:
        self._veto("session")
        check_transition(self.mode, "in_session")
        lock = await self._inhibit("a citizen's session is open")
        try:
            self.session = await self.sessions.open(stop=self.stop)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._session_lock = lock
        self.devices.printer.set_session(self.session.id)
        info = SessionInfo(self.session.id, self.session.opened_at, str(self.session.workspace.root))
        self._set(dataclasses.replace(self._state, session=info, sessions_today=self._state.sessions_today + 1))
        self._go("in_session", "next")
        self.clear_notice("station")
        if self.session.confined.startswith("unconfined"):
            self.notice("session", "session.unconfined", "warning")
        else:
            self.clear_notice("session")
        self.touch()
        for policy in self.policies:
            policy.session_opened()

    async def _idle_wipe(self) -> None:
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("idle")

    async def _end_session(self, reason: WipeReason, then: Mode | None = None) -> None:
        for policy in self.policies:
            policy.session_closing()
        if self.session is None:
            return
        self._go("wiping", reason)
        outcome = await self._wipe_one(self.session.id, reason)
        if outcome.verified:
            if then is None:
                self._settle_after_wipe()
            else:
                self._go(then, reason)

    async def _wipe_one(self, session_id: str, reason: WipeReason) -> WipeOutcome:
        """One wipe, with the machine's shutdown held off until it is over (a logind delay lock) and the policies
        told (the recorder writes the receipt) before it is released; then the station's own bookkeeping."""
        lock, self._session_lock = self._session_lock, None
        if lock is None or self.session is None or self.session.id != session_id:
            if lock is not None:
                lock.release()
            lock = await self._inhibit("a citizen's session is being wiped")
        try:
            outcome = await self.sessions.wipe(session_id, reason)
            for policy in self.policies:
                await policy.wiped(outcome)
        finally:
            if lock is not None:
                lock.release()
        self.last_wipe = outcome
        self.wipes.append(outcome)
        if self.session is not None and self.session.id == session_id:
            self.devices.printer.set_session(None)
            self.session = None
            self._set(dataclasses.replace(self._state, session=None))
        if outcome.verified and outcome.tampered:
            self.notice("wipe", "session.tampered", "warning", count=outcome.tampered)
        elif outcome.verified:
            self.clear_notice("wipe")
        else:
            self.notice("wipe", "wipe.failed", "error", handler=", ".join(outcome.failed_handlers()))
        if outcome.journal:
            self.notice("journal", "journal.unwritable", "error", problem=outcome.journal)
        return outcome

    async def _inhibit(self, why: str) -> InhibitLock | None:
        try:
            return await self.devices.host.inhibit(why)
        except Exception as exc:  # no logind: go on, the journal covers a power cut
            log.warning("no shutdown inhibitor (%s): %s", why, type(exc).__name__)
            return None

    async def _wipe_all(self, session_ids: list[str], reason: WipeReason) -> WipeOutcome | None:
        """Wipe sessions left behind (crash, power cut, failed wipe); settle only when all are verified."""
        if not self._is("wiping"):
            self._go("wiping", reason)
        outcome = None
        for session_id in session_ids:
            outcome = await self._wipe_one(session_id, reason)
            if not outcome.verified:
                return outcome
        self._settle_after_wipe()
        return outcome

    async def retry_wipe(self) -> WipeOutcome | None:
        """After a failed wipe: run it again (``kioskctl wipe --retry``)."""
        async with self._lock:
            pending = self.sessions.pending()
            if not pending or not self._is("wiping"):
                return None
            return await self._wipe_all(pending, "retry")

    async def end_of_day(self, reason: str = "end_of_day") -> None:
        if self.mode in ("off", "shutting_down"):
            raise TransitionRefused(f"not possible while {self.mode}", where="station", key="refused.end_of_day.state")
        if self.mode == "wiping" and reason != "power":
            raise TransitionRefused("a wipe is running", where="station", key="refused.next.wiping")
        if reason != "power":
            self._refuse_if_busy()
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("power" if reason == "power" else "end_of_day", then="shutting_down")
            if self.mode != "shutting_down":
                self._go("shutting_down", reason)
            await self._moving("off")
            self._go("off", reason)
        # only now, with every session wiped and verified (or journalled for the next start), the PC goes off
        await self.devices.host.power_off()

    async def host_shutdown(self, reason: str) -> None:
        """The machine goes down without kioskd asking (``shutdown``: logind's PrepareForShutdown) or kioskd is
        told to stop (``stop``: SIGTERM): a session still open is wiped first, then the station is off. It does not
        power off itself: someone already is (or the service is only stopping)."""
        if self.mode in ("off", "shutting_down"):
            return
        async with self._lock:  # a command running (a wipe, a start) finishes first
            if self.mode in ("off", "shutting_down"):
                return
            log.info("station: %s with the station %s", reason, self.mode)
            if self.mode == "in_session":
                await self._end_session("power", then="shutting_down")
            if self.mode != "shutting_down":
                self._go("shutting_down", reason)
            await self._moving("off")
            self._go("off", reason)

    async def travel(self) -> None:
        """Ignition on: the session ends (wipe), no new one, displays off; the van leaves its stop."""
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("travel")  # settles into travelling when the wipe is verified
            elif self.mode == "ready":
                self._go("travelling", "ignition")
                await self._moving("travelling")

    async def arrive(self) -> None:
        async with self._lock:
            if self.mode == "travelling":
                await self._moving("ready")
                self._go("ready", "arrived")

    async def close(self) -> None:
        lock, self._session_lock = self._session_lock, None
        if lock is not None:  # closing with a session left (its journal makes the next start wipe it)
            lock.release()
        for policy in self.policies:
            policy.close()
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _close_unstarted(coro: Coroutine[Any, Any, Any]) -> None:
    """A command cancelled before its first step (the station closed just after it was asked) never ran: closed, so
    that it is not reported as a coroutine never awaited, and says so in the log."""
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        log.info("station command %s dropped at close, never started", getattr(coro, "__qualname__", coro))
        coro.close()
