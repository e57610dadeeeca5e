"""The station: one state machine (off, starting, ready, in_session, wiping, travelling, shutting_down) that
folds device events into the snapshot and turns button presses, agent commands and policy decisions into
transitions. It knows hardware only through ``kioskd.hal`` contracts; illegal transitions are refused with a
reason from the message catalogue."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from kioskd import messages
from kioskd.backends import Devices
from kioskd.bus import EventBus
from kioskd.connectivity import ConnectivityPolicy, ConnectivityState
from kioskd.doctor import DoctorInputs
from kioskd.errors import KioskError, TransitionRefused, WipeError
from kioskd.hal import (
    ButtonPressed,
    Clock,
    DeviceFault,
    Event,
    JobStateChanged,
    LedPattern,
    ModemChanged,
    PowerChanged,
    PowerState,
    ScanFinished,
    ScanMode,
    ScanRequest,
    ScanSource,
    StateEvent,
    TimerHandle,
)
from kioskd.power import PowerDecision, PowerPolicy
from kioskd.profile import Profile
from kioskd.session import Session, Sessions, WipeOutcome, WipeReason
from kioskd.state import Level, Mode, Notice, SessionInfo, StationChanged, StationState
from kioskd.store import Store

log = logging.getLogger(__name__)

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

LED: dict[Mode, LedPattern] = {
    "off": "off",
    "starting": "slow",
    "ready": "steady",
    "in_session": "double",
    "wiping": "slow",
    "travelling": "off",
    "shutting_down": "slow",
}


def needs_attention(notice: Notice) -> bool:
    """A notice the LED must show by itself (fast blink): a failed wipe, a device fault, a power warning."""
    if notice.level == "info":
        return False
    return notice.topic in ("wipe", "power") or notice.topic.startswith("device.")


def led_pattern(state: StationState) -> LedPattern:
    """The LED for a snapshot: the mode's pattern, or fast blink while something needs the agent (the station
    running: an LED blinking on a station that is off or shutting down would say it still needs something)."""
    if state.mode not in ("off", "shutting_down") and any(needs_attention(n) for n in state.notices):
        return "fast"
    return LED[state.mode]


def check_transition(current: Mode, target: Mode) -> None:
    """Raise ``TransitionRefused`` unless ``current → target`` is in the table."""
    if target not in TRANSITIONS[current]:
        raise TransitionRefused(
            f"{current} → {target} is not a transition of the station",
            where="station",
            key="refused.transition",
            params={"current": current, "target": target},
        )


class Station:
    def __init__(
        self,
        profile: Profile,
        devices: Devices,
        bus: EventBus,
        clock: Clock,
        sessions: Sessions,
        store: Store | None = None,
    ) -> None:
        self.profile = profile
        self.devices = devices
        self.bus = bus
        self.clock = clock
        self.sessions = sessions
        self.store = store
        self._last_sample = float("-inf")
        self._state = StationState(vehicle=profile.vehicle.id, since=clock.wall())
        self.session: Session | None = None
        self.last_wipe: WipeOutcome | None = None
        # the last wipes, for scenarios and tests (bounded: the store keeps every receipt, a van runs for years)
        self.wipes: deque[WipeOutcome] = deque(maxlen=500)
        self.power = PowerPolicy(profile.power_policy, profile.station.session_length, clock, self._on_power_decision)
        self._lock = asyncio.Lock()
        self._idle_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._press_waiters: list[asyncio.Future[bool]] = []
        self._scans_running = 0
        self._led: LedPattern = "off"  # the pattern last sent to the button's LED
        self.connectivity = ConnectivityPolicy(profile.connectivity, clock, devices.modem, self, store)
        self._unsubscribe = bus.subscribe(self._on_event)
        self.connectivity.start()

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
        """Show the agent a notice from outside the station (the fleet link); ``clear_notice`` removes it."""
        self._notice(topic, key, level, **params)

    def clear_notice(self, topic: str) -> None:
        self._clear(topic)

    def _notice(self, topic: str, key: str, level: Level = "info", **params: Any) -> None:
        notice = Notice(topic, key, level, tuple(sorted(params.items())), self.clock.wall())
        self._set(self._state.with_notice(notice))

    def _clear(self, topic: str) -> None:
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
            if isinstance(event, PowerChanged):
                self.power.update(event.state)
                self._sample(event.state)
            elif isinstance(event, ModemChanged):
                self.connectivity.update(event.state)
        elif isinstance(event, ButtonPressed):
            if self._press_waiters:  # the doctor's "press the button now": not a command
                for waiter in self._press_waiters:
                    if not waiter.done():
                        waiter.set_result(True)
            else:
                self._spawn(self.press(long=event.long))
        elif isinstance(event, JobStateChanged) and self.session is not None and event.job.session == self.session.id:
            self.session.job_ids.add(event.job.id)
            self.touch()
        elif isinstance(event, ScanFinished):
            self.touch()
        elif isinstance(event, DeviceFault):
            topic = f"device.{event.kind}.{event.fault}"  # one notice per fault: clearing one keeps the others
            if event.cleared:
                self._clear(topic)
            else:
                self._notice(topic, event.fault, "warning")

    def _on_power_decision(self, decision: PowerDecision) -> None:
        if decision.action == "notice":
            soc = None if decision.soc is None else round(decision.soc)
            # the shore plug's news has its own line: it must not hide a low-battery warning (nor the reverse)
            topic = "power.shore" if decision.key.startswith("power.shore.") else "power"
            self._notice(topic, decision.key, decision.level, **({"soc": soc} if soc is not None else {}))
        elif decision.action == "clear":
            self._clear("power")
        elif decision.action == "shutdown":
            self._notice("power", decision.key, "error", soc=round(decision.soc or 0))
            self._spawn(self.end_of_day(reason="power"))
        elif decision.action == "travel":
            self._notice("power.ignition", decision.key)
            self._spawn(self.travel())
        elif decision.action == "arrive":
            self._notice("power.ignition", decision.key)
            self._spawn(self.arrive())

    def _sample(self, state: PowerState) -> None:
        """Power samples for the panel's history, at most one per ``sample_period`` (the store is on disk)."""
        now = self.clock.wall()
        if (
            self.store is None
            or not state.available
            or now - self._last_sample < self.profile.power_policy.sample_period
        ):
            return
        self._last_sample = now
        self._spawn(self.store.add_power_sample(now, state))

    # ------------------------------------------------------------------------------------------- connectivity
    def show_connectivity(self, state: ConnectivityState) -> None:
        self._set(dataclasses.replace(self._state, connectivity=state))

    def connectivity_notice(self, topic: str, key: str | None, level: Level, params: dict[str, Any]) -> None:
        if key is None:
            self._clear(f"connectivity.{topic}")
        else:
            self._notice(f"connectivity.{topic}", key, level, **params)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._spawn(coro)

    @property
    def stop(self) -> str | None:
        """The stop the van stands at (named by the agent or found by GPS), for the office's figures."""
        return self._state.connectivity.stop

    def set_stop(self, name: str | None) -> ConnectivityState:
        """The agent names the stop the van stands at (``kioskctl stop NAME``), for the signal atlas."""
        return self.connectivity.set_stop(name)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Background commands (button, policies) report refusals as notices instead of raising."""
        try:
            await coro
        except TransitionRefused as exc:
            self._notice("station", exc.key or "refused.transition", "warning", **refusal_params(exc, self.mode))
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
        """The one button: short = start / next citizen, long = end of day."""
        if long:
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
        if not self.power.can_start():
            raise TransitionRefused("battery critical", where="power", key="refused.power.critical")
        async with self._lock:
            self._go("starting", "start")
            await self.devices.displays.set_power(True)
            await self.devices.displays.set_mirror(True)
            pending = self.sessions.pending()
            if pending:
                await self._wipe_all(pending, "recovery")  # settles, or stays in wiping until someone acts
            else:
                self._settle_after_wipe()

    def _settle_after_wipe(self) -> None:
        """Where the station goes once nothing of a citizen is left: ready, or travelling if the engine runs."""
        if self.power.ignition:
            self._go("travelling", "ignition")
            self._spawn(self.devices.displays.set_power(False))
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
            await self._open_session()

    def _is(self, *modes: Mode) -> bool:
        """The mode now (after an await, unlike a narrowed ``self.mode``)."""
        return self.mode in modes

    async def _open_session(self) -> None:
        refusal = self.power.refusal()
        if refusal is not None:
            key, params = refusal
            raise TransitionRefused("not enough battery for a session", where="power", key=key, params=params)
        check_transition(self.mode, "in_session")
        self.session = await self.sessions.open(stop=self.stop)
        self.devices.printer.set_session(self.session.id)
        info = SessionInfo(self.session.id, self.session.opened_at, str(self.session.workspace.root))
        self._set(dataclasses.replace(self._state, session=info, sessions_today=self._state.sessions_today + 1))
        self._go("in_session", "next")
        self._clear("station")
        self.touch()

    # ------------------------------------------------------------------------------------------- idle
    def touch(self) -> None:
        """Someone is working with the citizen: the idle countdown starts again."""
        if self.session is None:
            return
        self._cancel_idle()
        if self._state.session is not None and self._state.session.idle_deadline is not None:
            self._set(
                dataclasses.replace(self._state, session=dataclasses.replace(self._state.session, idle_deadline=None))
            )
            self._clear("idle")
        cfg = self.profile.station
        self._idle_timer = self.clock.call_later(cfg.idle_timeout - cfg.idle_warning, self._idle_warning)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_warning(self) -> None:
        if self.session is None or self._state.session is None:
            return
        warning = self.profile.station.idle_warning
        deadline = self.clock.wall() + warning
        self._set(
            dataclasses.replace(self._state, session=dataclasses.replace(self._state.session, idle_deadline=deadline))
        )
        self._notice("idle", "session.idle.warning", "warning", seconds=int(warning))
        self._idle_timer = self.clock.call_later(warning, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        self._clear("idle")
        if self._scans_running:  # a long feeder stack is work with the citizen, not idleness
            self.touch()
            return
        self._spawn(self._idle_wipe())

    async def _idle_wipe(self) -> None:
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("idle")

    # ------------------------------------------------------------------------------------------- scanning
    async def scan(
        self, source: ScanSource, mode: ScanMode | None, multi: bool, destination: str | None
    ) -> dict[str, Any]:
        """One scan job into the current session's scans folder, fitted to the destination's size budget."""
        # imported here: OpenCV costs a third of a second at start-up and is only needed once a citizen is in
        from kioskd.policies.scanning_pipeline import scan_to_pdf

        session = self.session
        if session is None or self.mode != "in_session":
            raise TransitionRefused("scanning needs a citizen session", where="station", key="refused.no_session")
        cfg = self.profile.scanning
        try:
            target = cfg.destination(destination)
        except KeyError:
            raise TransitionRefused(
                f"no upload destination {destination!r}",
                where="scanning",
                key="api.bad_request",
                params={"detail": f"destination: {', '.join(d.name for d in cfg.destinations)}"},
            ) from None
        self.touch()
        request = ScanRequest(source=source, resolution=cfg.resolution, mode=mode or cfg.mode, multi=multi)
        self._scans_running += 1
        try:
            outcome = await scan_to_pdf(
                self.devices.scanner, request, dest=session.workspace.scans, budget=target.max_bytes, clock=self.clock
            )
        finally:
            self._scans_running -= 1
        self.touch()
        level: Level = "info" if outcome.path is not None and outcome.fault is None else "warning"
        self._notice("scan", outcome.message, level, **dict(outcome.params))
        await self.snapshot()
        return {
            "ok": outcome.path is not None,
            "file": outcome.path.name if outcome.path else None,
            "pages": outcome.pages,
            "bytes": outcome.bytes,
            "fault": outcome.fault,
            "destination": target.name,
            "message": messages.both(outcome.message, **dict(outcome.params)),
        }

    async def scans(self) -> list[dict[str, Any]]:
        """The current session's scans (names kioskd gave them, sizes) — for the session's own view only."""
        if self.session is None:
            return []
        folder = self.session.workspace.scans

        def listing() -> list[dict[str, Any]]:
            return [{"file": p.name, "bytes": p.stat().st_size} for p in sorted(folder.glob("*.pdf"))]

        return await asyncio.to_thread(listing)

    # ------------------------------------------------------------------------------------------- printing
    async def print_document(self, document: bytes) -> int:
        """Print a document of the current session under an anonymous title; returns the job id."""
        session = self.session
        if session is None or self.mode != "in_session":
            raise TransitionRefused("printing needs a citizen session", where="station", key="refused.no_session")
        self.touch()
        session.print_count += 1
        number = session.print_count
        path = session.workspace.prints / f"print-{number}.pdf"
        await asyncio.to_thread(path.write_bytes, document)
        job = await self.devices.printer.submit(path, title=f"kiosk-{session.id}-{number}", session=session.id)
        await self.snapshot()
        return job

    async def set_privacy(self, on: bool | None = None) -> bool:
        """The privacy curtain: the citizen screen shows a neutral page while the agent types their own
        credentials; ``None`` toggles. Not an agent command that takes the lock: it must answer at once, also while
        a wipe runs. Returns the curtain's new state."""
        if self.mode in ("off", "travelling", "shutting_down"):
            raise TransitionRefused("the screens are off", where="displays", key="refused.privacy.off")
        target = (not self._state.displays.curtain) if on is None else on
        await self.devices.displays.set_curtain(target)
        await self.snapshot()
        return target

    async def _end_session(self, reason: WipeReason, then: Mode | None = None) -> None:
        self._cancel_idle()
        self._clear("idle")
        if self.session is None:
            return
        await self._wipe(self.session.id, reason, then)

    async def _inhibited_wipe(self, session_id: str, reason: WipeReason) -> WipeOutcome:
        """The wipe, with the machine's shutdown held off until it is over (a logind delay lock)."""
        lock = None
        try:
            lock = await self.devices.host.inhibit("a citizen's session is being wiped")
        except Exception as exc:  # no logind: wipe anyway, the journal covers a power cut
            log.warning("no shutdown inhibitor during the wipe: %s", type(exc).__name__)
        try:
            return await self.sessions.wipe(session_id, reason)
        finally:
            if lock is not None:
                lock.release()

    async def _wipe(self, session_id: str, reason: WipeReason, then: Mode | None = None) -> WipeOutcome:
        """Wipe one session; once verified, go to ``then`` (default: ready, or travelling if the engine runs)."""
        self._go("wiping", reason)
        outcome = await self._inhibited_wipe(session_id, reason)
        self.last_wipe = outcome
        self.wipes.append(outcome)
        if self.session is not None and self.session.id == session_id:
            self.devices.printer.set_session(None)
            self.session = None
            self._set(dataclasses.replace(self._state, session=None))
        if outcome.verified:
            self._clear("wipe")
            if then is None:
                self._settle_after_wipe()
            else:
                self._go(then, reason)
        else:
            self._notice("wipe", "wipe.failed", "error", handler=", ".join(outcome.failed_handlers()))
        return outcome

    async def _wipe_all(self, session_ids: list[str], reason: WipeReason) -> WipeOutcome | None:
        """Wipe sessions left behind (crash, power cut, failed wipe); settle only when all are verified."""
        if not self._is("wiping"):
            self._go("wiping", reason)
        outcome = None
        for session_id in session_ids:
            outcome = await self._inhibited_wipe(session_id, reason)
            self.last_wipe = outcome
            self.wipes.append(outcome)
            if not outcome.verified:
                self._notice("wipe", "wipe.failed", "error", handler=", ".join(outcome.failed_handlers()))
                return outcome
        self._clear("wipe")
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
            await self.devices.displays.set_power(False)
            self._go("off", reason)
        # only now, with every session wiped and verified (or journalled for the next start), the PC goes off
        await self.devices.host.power_off()

    async def travel(self) -> None:
        """Ignition on: the session ends (wipe), no new one, displays off; the van leaves its stop."""
        if self.connectivity.state.stop_source == "agent":
            self.connectivity.set_stop(None)
        async with self._lock:
            if self.mode == "in_session":
                await self._end_session("travel")  # settles into travelling when the wipe is verified
            elif self.mode == "ready":
                self._go("travelling", "ignition")
                await self.devices.displays.set_power(False)

    async def arrive(self) -> None:
        async with self._lock:
            if self.mode == "travelling":
                await self.devices.displays.set_power(True)
                await self.devices.displays.set_mirror(True)
                self._go("ready", "arrived")

    async def close(self) -> None:
        self._cancel_idle()
        self.connectivity.close()
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def refusal_params(exc: KioskError, mode: str) -> dict[str, Any]:
    """Parameters for any refusal message (notice or API error): the state, plus what the refusal carries."""
    return {"state": mode, "current": mode, "target": "?", **exc.params}
