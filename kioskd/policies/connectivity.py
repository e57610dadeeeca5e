"""The connectivity policy: is the Internet really usable, what the agent should know about the modem, the recovery
of a stuck link, which uplink carries the traffic when there are several, and the signal samples of the tour's stops
(the atlas), per stop and per uplink.

Plain rules on the injected clock; it knows the modem only through the ``kioskd.hal.Modem`` contract and imports no
driver. The reachability probe is the one poll, at the profile's period, through each uplink's own interface;
recovery steps wait longer each time. The atlas's samples leave as ``SignalSampled`` and ``UplinkSampled`` events
(the recorder writes them): this policy writes to no store."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from kioskd.hal import (
    Clock,
    DeviceUnsupported,
    Event,
    IgnitionChanged,
    Modem,
    ModemChanged,
    ModemState,
    TimerHandle,
    Uplink,
    Uplinks,
)
from kioskd.policies.base import Policy
from kioskd.policies.visio import VisioCheck, bind_options, exchange, measure
from kioskd.profile import AtlasStop, ConnectivityConfig

log = logging.getLogger(__name__)

Outcome = Literal["", "ok", "wrong-status", "unreachable", "dns-failed"]
StepAction = Literal["reconnect", "reset"]
StopSource = Literal["agent", "gps", "cell"]
SwitchReason = Literal["failed", "preferred", "start", "stop"]
Level = Literal["info", "warning", "error"]
REGISTERED = ("home", "roaming")
STEPS: tuple[StepAction, ...] = ("reconnect", "reset")  # cheap first; the reset drops the modem for a while


@dataclass(frozen=True)
class ConnectivityState:
    """The policy's view, served next to the modem's own state: ``internet`` is what the probe found."""

    internet: bool | None = None  # None until a probe ran
    probe: str = "modem"  # the kind of probe: modem, http, dns
    outcome: Outcome = ""
    checked_at: float | None = None  # wall clock of the last probe
    failing_since: float | None = None  # wall clock: registered, but no working data since then
    recovery: StepAction | None = None  # the last recovery step taken (None once the link works)
    attempts: int = 0
    next_step_at: float | None = None  # wall clock before which no other step is taken
    stop: str | None = None  # the stop the van stands at, for the atlas
    stop_source: StopSource | None = None
    uplink: str | None = None  # with several uplinks: the one carrying the traffic now
    uplinks: tuple[UplinkProbe, ...] = ()  # with several uplinks: each one's last probe, in order of preference
    switched_at: float | None = None  # wall clock of the last change of uplink
    visio: bool | None = None  # whether a video call holds through the uplink in use here (None: not checked)
    visio_checks: tuple[VisioCheck, ...] = ()  # the last check of each uplink at this stop


@dataclass(frozen=True)
class UplinkProbe:
    """One uplink's last probe, through its own interface."""

    name: str
    operator: str | None
    interface: str | None
    outcome: Outcome  # "" when not probed (a SIM slot the modem is not on)
    passing_since: float | None = None  # wall clock since which its probes pass
    standby: bool = False  # a dual-SIM modem's other slot: nothing to probe until the modem switches to it


@dataclass(frozen=True)
class UplinkSwitched(Event):
    """The traffic moved to another uplink (``reason``: the one in use failed, the preferred one held, or the stop
    names the uplink that works there)."""

    uplink: str
    previous: str | None
    reason: SwitchReason


@dataclass(frozen=True)
class RecoveryStep(Event):
    """A recovery step was taken (or the link came back: ``action`` "recovered")."""

    action: Literal["reconnect", "reset", "recovered"]
    attempt: int
    next_in: float | None = None  # seconds before another step may follow


@dataclass(frozen=True)
class SignalSampled(Event):
    """What the atlas keeps of one moment at a stop: the link's figures, nothing about anyone."""

    at: float  # wall clock
    stop: str
    quality: int | None
    rsrp: float | None
    rsrq: float | None
    sinr: float | None
    technology: str
    internet: bool | None


@dataclass(frozen=True)
class VisioChecked(Event):
    """A video-call check ran at a stop: the atlas keeps it per uplink and operator."""

    stop: str | None
    operator: str | None
    check: VisioCheck


@dataclass(frozen=True)
class UplinkSampled(Event):
    """The atlas's per-uplink sample: at this stop, through this uplink and operator, did the probe pass."""

    at: float  # wall clock
    stop: str
    uplink: str
    operator: str | None
    technology: str
    quality: int | None
    internet: bool | None


Probe = Callable[[], Awaitable[Outcome]]


def make_probe(config: ConnectivityConfig, modem: Modem, interface: str | None = None) -> Probe:
    """The probe the profile asks for, through ``interface`` when given. HTTP(S): one GET, redirects not followed,
    the status must be the expected one (a captive portal answers 200 or 302 instead of 204). DNS: the name must
    resolve (and, through an interface, its port 443 answer by it: the resolver itself is not bound). Modem: the
    backend's own check (the simulated van decides)."""
    timeout = config.probe_timeout
    if config.probe == "http":
        url, expected = str(config.probe_url), config.probe_status

        async def http() -> Outcome:
            import httpx  # only vans probing over HTTP pay for it at start-up

            try:
                async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                    response = await client.get(url, headers={"cache-control": "no-cache"})
            except (httpx.HTTPError, OSError):
                return "unreachable"
            return "ok" if response.status_code == expected else "wrong-status"

        async def http_via() -> Outcome:
            assert interface is not None
            try:
                status = await asyncio.wait_for(exchange(url, interface), timeout)
            except (OSError, TimeoutError, ValueError):
                return "unreachable"
            return "ok" if status == expected else "wrong-status"

        return http if interface is None else http_via
    if config.probe == "dns":
        host = str(config.probe_host)

        async def dns() -> Outcome:
            loop = asyncio.get_running_loop()
            try:
                # a network timeout, not a policy delay: it bounds a resolver that never answers
                found = await asyncio.wait_for(loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM), timeout)
            except (OSError, TimeoutError):
                return "dns-failed"
            if interface is None:
                return "ok"
            family, kind, proto, _, address = found[0]
            with socket.socket(family, kind, proto) as sock:
                for level, option, value in bind_options(interface):
                    sock.setsockopt(level, option, value)
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(sock, address), timeout)
                except (OSError, TimeoutError):
                    return "unreachable"
            return "ok"

        return dns

    async def backend() -> Outcome:
        return "ok" if await modem.check_internet() else "unreachable"

    return backend


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine): plenty for stops a few hundred metres wide."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def stop_at(stops: tuple[AtlasStop, ...], latitude: float, longitude: float) -> str | None:
    """The nearest stop of the profile whose radius holds the point, or None."""
    best: tuple[float, str] | None = None
    for stop in stops:
        if stop.latitude is None or stop.longitude is None:
            continue
        d = distance_m(latitude, longitude, stop.latitude, stop.longitude)
        if d <= stop.radius and (best is None or d < best[0]):
            best = (d, stop.name)
    return None if best is None else best[1]


def stop_of_cell(stops: tuple[AtlasStop, ...], cells: list[str]) -> str | None:
    """The first stop of the profile that lists one of ``cells`` (serving cells, "MCCMNC-LAC-CID"), or None."""
    for stop in stops:
        if any(cell in stop.cells for cell in cells):
            return stop.name
    return None


class ConnectivityPolicy(Policy):
    events = (ModemChanged, IgnitionChanged)

    def __init__(
        self,
        config: ConnectivityConfig,
        clock: Clock,
        modem: Modem,
        probe: Probe | None = None,
        probe_via: Callable[[str], Probe] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.modem = modem
        self.probe = probe or make_probe(config, modem)
        self.probe_via = probe_via or (lambda interface: make_probe(config, modem, interface))
        self._passing_since: dict[str, tuple[float, float]] = {}  # uplink → (monotonic, wall) since its probes pass
        self._recovering: str | None = None  # with several uplinks: the one the recovery steps are for
        self._can_reconnect = True  # False once the backend said reconnecting is not its to do
        self._visio_due: dict[str, float] = {}  # uplink → monotonic time before which it is not checked again
        self._stop_wants: str | None = None  # the uplink the stop just reached names, until the next round takes it
        self._slot_switched = float("-inf")  # monotonic: the last move to a SIM slot the modem was not on
        self.state = ConnectivityState(probe=config.probe)
        self.last_modem = ModemState()
        self._seen_modem = False
        self._timer: TimerHandle | None = None
        self._running = False
        self._busy = False
        self._failing_since: float | None = None  # monotonic
        self._next_step: float = float("-inf")  # monotonic
        self._last_sample = float("-inf")
        self._shown: dict[str, str | None] = {}  # topic → key on screen (no new notice for the same key)

    # ------------------------------------------------------------------------------------------- life
    def start(self) -> None:
        """The first probe now, then one every ``period``."""
        if not self._running:
            self._running = True
            self._schedule(0.0)

    def close(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float) -> None:
        if self._running:
            self._timer = self.clock.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._schedule(self.config.period)  # a steady cadence, whatever a round costs
        if not self._busy:  # a round still running (a modem reset) makes this one pointless: skip it
            self.outlet.spawn(self._round())

    async def _round(self) -> None:
        self._busy = True
        try:
            await self.check()
        finally:
            self._busy = False

    # ------------------------------------------------------------------------------------------- modem
    def on_event(self, event: Event) -> None:
        if isinstance(event, ModemChanged):
            self.update(event.state)
        elif isinstance(event, IgnitionChanged) and event.on and self.state.stop_source == "agent":
            self.set_stop(None)  # the van leaves the stop the agent named (a GPS stop follows the van by itself)

    def update(self, modem: ModemState) -> None:
        """The modem's new state (from the station): notices about the modem itself, and the GPS stop."""
        self.last_modem = modem
        self._seen_modem = True
        self._modem_notices(modem)
        if self.state.stop_source == "agent":
            return
        source: StopSource | None = None
        if modem.latitude is not None and modem.longitude is not None:
            found, source = stop_at(self.config.stops, modem.latitude, modem.longitude), "gps"
        else:  # no GPS fix: the serving cells of the profile's stops (of any uplink) still say where the van is
            cells = [c for c in (modem.cell, *(u.cell for u in modem.uplinks)) if c]
            if not cells and self.state.stop_source != "cell":
                return
            found, source = stop_of_cell(self.config.stops, cells), "cell"
        if found != self.state.stop or (found and source != self.state.stop_source):
            moved = found != self.state.stop
            self._show(stop=found, stop_source=source if found else None)
            if moved:
                self._new_place()

    def _modem_notices(self, m: ModemState) -> None:
        key: str | None = None
        level: Level = "warning"
        params: dict[str, Any] = {}
        if not m.present:
            key, level = "modem.absent", "error"
        elif m.sim == "missing":
            key, level = "modem.sim.missing", "error"
        elif m.sim == "locked":
            key, level = "modem.sim.locked", "error"
        elif m.registration == "denied":
            key, level = "modem.denied", "error"
        elif m.registration not in REGISTERED:
            key = "modem.no_network"
        self._notice("modem", key, level, params)
        weak = m.present and m.signal is not None and 0 < m.signal < self.config.weak_signal
        self._notice("signal", "modem.signal.weak" if weak else None, "info", {"quality": m.signal})

    def _notice(self, topic: str, key: str | None, level: Level, params: dict[str, Any]) -> None:
        if self._shown.get(topic) == key and topic != "recovery":
            return
        self._shown[topic] = key
        if key is None:
            self.outlet.clear_notice(f"connectivity.{topic}")
        else:
            self.outlet.notice(f"connectivity.{topic}", key, level, **params)

    def _show(self, **changes: Any) -> None:
        new = replace(self.state, **changes)
        if new != self.state:
            self.state = new
            self.outlet.show(connectivity=new)

    # ------------------------------------------------------------------------------------------- stops
    def set_stop(self, name: str | None) -> ConnectivityState:
        """The agent names the stop the van stands at (None: left it; the GPS may name the next one)."""
        self._show(stop=name, stop_source="agent" if name else None)
        self._last_sample = float("-inf")  # a new stop gets its first sample at the next probe
        self._new_place()
        return self.state

    def _stop_uplink(self) -> str | None:
        """The uplink the profile names for the stop the van stands at, if any."""
        stop = next((s for s in self.config.stops if s.name == self.state.stop), None)
        return None if stop is None else stop.uplink

    def _new_place(self) -> None:
        """Another stop: the uplink it names is taken at the next round; the video-call checks of the last one say
        nothing here."""
        self._stop_wants = self._stop_uplink()
        self._visio_due.clear()
        if self.state.visio_checks or self.state.visio is not None:
            self._show(visio_checks=(), visio=None)
            self._notice("visio", None, "info", {})

    # ------------------------------------------------------------------------------------------- probe
    def _uplinks(self) -> tuple[Uplink, ...]:
        return self.modem.uplinks if isinstance(self.modem, Uplinks) else ()

    async def _run_probe(self, probe: Probe) -> Outcome:
        try:
            return await probe()
        except Exception:
            log.exception("the reachability probe failed unexpectedly")
            return "unreachable"

    async def check(self) -> ConnectivityState:
        """One probe (one per uplink when there are several), then what follows from it: the uplink in use,
        notices, a recovery step when due, samples for the atlas."""
        uplinks = self._uplinks()
        registered = False
        if uplinks:
            outcome, registered = await self._check_uplinks(uplinks)
        else:
            outcome = await self._run_probe(self.probe)
        now, wall = self.clock.monotonic(), self.clock.wall()
        ok = outcome == "ok"
        self._show(internet=ok, outcome=outcome, checked_at=wall)
        m = self.last_modem
        if not uplinks:
            registered = self._seen_modem and m.present and m.registration in REGISTERED
        healthy = self._recovering is None if uplinks else ok
        if healthy:
            self._recovered()
            self._notice("internet", None, "info", {})
        elif registered:
            if self._failing_since is None:
                self._failing_since = now
                self._show(failing_since=wall)
            if not ok:
                self._notice("internet", "modem.no_internet" if m.connected else "modem.offline", "warning", {})
            else:
                self._notice("internet", None, "info", {})
            if now - self._failing_since >= self.config.recover_after and now >= self._next_step:
                await self._step(now)
        else:
            # no network at all (dead zone, no SIM, no modem): nothing a reconnect could fix; the modem notice says why
            self._failing_since = None
            self._show(failing_since=None)
            self._notice("internet", "modem.offline" if m.present and not ok else None, "warning", {})
        self._sample(wall)
        await self._visio(uplinks)
        return self.state

    async def _visio(self, uplinks: tuple[Uplink, ...]) -> None:
        """At most one video-call check a round, of the first uplink that passes and is due (``visio_period`` per
        uplink at a stop), never while a citizen's session is open (their call would suffer, and be measured)."""
        cfg = self.config
        if cfg.visio_url is None or self.outlet.session is not None:
            return
        now = self.clock.monotonic()
        if uplinks:
            passing = {p.name for p in self.state.uplinks if p.outcome == "ok"}
            candidates = [(u.name, u.interface, u.operator) for u in uplinks if u.name in passing]
        elif self.state.internet:
            candidates = [(self.last_modem.uplink or "modem", None, self.last_modem.operator)]
        else:
            candidates = []
        due = [c for c in candidates if now >= self._visio_due.get(c[0], float("-inf"))]
        if not due:
            return
        name, interface, operator = due[0]
        self._visio_due[name] = now + cfg.visio_period
        wall = self.clock.wall()
        try:
            check = await asyncio.wait_for(
                measure(cfg.visio_url, name, interface, cfg.visio_bytes, wall, cfg.visio_min_kbps, cfg.visio_max_rtt,
                        cfg.visio_max_jitter),
                cfg.visio_timeout,
            )  # fmt: skip
        except TimeoutError:
            check = VisioCheck(name, wall, False)
        checks = (*tuple(c for c in self.state.visio_checks if c.uplink != name), check)
        self._show(visio_checks=checks)
        self._show_visio()
        self.outlet.publish(VisioChecked(self.state.stop, operator, check))

    def _show_visio(self) -> None:
        """Whether a video call holds here through the uplink in use, on the panel before the agent calls."""
        in_use = self.state.uplink or self.last_modem.uplink or "modem"
        found = next((c for c in self.state.visio_checks if c.uplink == in_use), None)
        possible = None if found is None else found.possible
        self._show(visio=possible)
        key = None if possible is None else "visio.possible" if possible else "visio.not_possible"
        self._notice("visio", key, "info", {})

    async def _check_uplinks(self, uplinks: tuple[Uplink, ...]) -> tuple[Outcome, bool]:
        """Probe every uplink through its own interface at once; keep the traffic on the best one that passes:
        leave a failing one at once, go back to a preferred one once it has passed for ``switch_back_after``.
        The stop's own uplink (the profile's) comes first there and is taken on arrival. A dual-SIM modem's other
        slot cannot be probed: it is tried when nothing else passes (at most once per ``switch_back_after``).
        Returns the outcome of the uplink in use and whether the one to recover is registered."""
        order = [u.name for u in uplinks]
        here = self._stop_uplink()
        if here in order:
            order = [here, *(name for name in order if name != here)]
        standby = [name for name in order if next(u for u in uplinks if u.name == name).standby]

        async def probe(u: Uplink) -> Outcome:
            if u.standby:
                return ""  # the modem is on its other SIM: nothing of this one to probe
            if not u.active or u.interface is None:
                return "unreachable"  # NetworkManager has it down: nothing to probe through
            return await self._run_probe(self.probe_via(u.interface))

        outcomes = dict(zip([u.name for u in uplinks], await asyncio.gather(*(probe(u) for u in uplinks)), strict=True))
        now, wall = self.clock.monotonic(), self.clock.wall()
        for name, outcome in outcomes.items():
            if outcome == "ok":
                self._passing_since.setdefault(name, (now, wall))
            else:
                self._passing_since.pop(name, None)
        passing = [name for name in order if outcomes[name] == "ok"]
        current = self.state.uplink
        target: str = current or order[0]
        reason: SwitchReason = "start"
        wants, self._stop_wants = self._stop_wants, None
        if current is None or current not in order:
            target = passing[0] if passing else order[0]
        elif wants in order and wants != current and (wants in passing or wants in standby):
            target, reason = str(wants), "stop"
        elif current not in passing and passing:
            target, reason = passing[0], "failed"
        elif current not in passing and standby and now - self._slot_switched >= self.config.switch_back_after:
            target, reason = standby[0], "failed"
        elif passing and order.index(passing[0]) < order.index(current):
            held = now - self._passing_since[passing[0]][0]
            if held >= self.config.switch_back_after:
                target, reason = passing[0], "preferred"
        if target != current:
            if target in standby:
                self._slot_switched = now
            await self._switch(target, current, reason)
        probes = tuple(
            UplinkProbe(
                u.name,
                u.operator,
                u.interface,
                outcomes[u.name],
                self._passing_since[u.name][1] if u.name in self._passing_since else None,
                u.standby,
            )
            for u in uplinks
        )
        self._show(uplinks=probes)
        used = {u.name: u for u in uplinks}[target]
        if target != order[0]:
            params = {"uplink": target, "operator": used.operator or target, "preferred": order[0]}
            self._notice("uplink", "uplink.backup", "info", params)
        else:
            self._notice("uplink", None, "info", {})
        failing = next((u for u in uplinks if u.kind == "gsm" and not u.standby and outcomes[u.name] != "ok"), None)
        to_recover = None if failing is None else failing.name
        if to_recover != self._recovering:
            if self._recovering is not None and to_recover is not None:  # another uplink: its own count
                self._failing_since, self._next_step = None, float("-inf")
                self._show(failing_since=None, recovery=None, attempts=0, next_step_at=None)
            self._recovering = to_recover  # None: all modems pass, check() tells the recovery
        return outcomes[target], failing is not None and failing.registered

    async def _switch(self, target: str, previous: str | None, reason: SwitchReason) -> None:
        assert isinstance(self.modem, Uplinks)
        log.warning("uplink %s carries the traffic now (was %s: %s)", target, previous or "-", reason)
        try:
            await self.modem.prefer(target)
        except Exception as exc:
            log.warning("cannot move the traffic to uplink %s: %s", target, exc)
            return
        self._show(uplink=target, switched_at=self.clock.wall())
        self.outlet.publish(UplinkSwitched(target, previous, reason))
        if self.state.visio_checks:
            self._show_visio()

    def _recovered(self) -> None:
        self._failing_since = None
        self._next_step = float("-inf")
        if self.state.attempts:
            self.outlet.publish(RecoveryStep("recovered", self.state.attempts))
            self._notice("recovery", "modem.recovery.done", "info", {})
        elif self._shown.get("recovery") is not None:
            self._notice("recovery", None, "info", {})
        self._show(failing_since=None, recovery=None, attempts=0, next_step_at=None)

    async def _step(self, now: float) -> None:
        cfg = self.config
        attempt = self.state.attempts + 1
        action = STEPS[(attempt - 1) % len(STEPS)] if self._can_reconnect else "reset"
        wait = min(cfg.backoff_max, cfg.backoff_initial * 2 ** (attempt - 1))
        self._next_step = now + wait
        minutes = int((now - (now if self._failing_since is None else self._failing_since)) // 60)
        self._show(recovery=action, attempts=attempt, next_step_at=self.clock.wall() + wait)
        log.warning("no working data for %d min: recovery step %d (%s), next in %.0f s", minutes, attempt, action, wait)
        self.outlet.publish(RecoveryStep(action, attempt, wait))
        params = {"minutes": minutes, "attempt": attempt, "next": math.ceil(wait / 60)}
        self._notice("recovery", f"modem.recovery.{action}", "warning", params)
        try:
            await self._recover(action)
        except DeviceUnsupported as exc:
            # ModemManager alone: connections are NetworkManager's; the reset is the step left (issue 21)
            log.info("no reconnection through this backend (%s): resetting instead", exc.what)
            self._can_reconnect = False
            try:
                await self._recover("reset")
            except Exception as again:
                log.warning("recovery step reset failed: %s", again)
                self._notice("recovery", "modem.recovery.failed", "warning", {"step": "reset"})
        except Exception as exc:
            log.warning("recovery step %s failed: %s", action, exc)
            self._notice("recovery", "modem.recovery.failed", "warning", {"step": action})

    async def _recover(self, action: StepAction) -> None:
        name = self._recovering
        if name is not None and isinstance(self.modem, Uplinks):
            await (self.modem.reconnect_uplink(name) if action == "reconnect" else self.modem.reset_uplink(name))
        elif action == "reconnect":
            await self.modem.reconnect()
        else:
            await self.modem.reset()

    def _sample(self, wall: float) -> None:
        """One sample per ``sample_period`` at a named stop: the atlas's raw material (no personal data). The
        recorder writes it beside the round, so a slow disk never holds the next probe back."""
        m, stop = self.last_modem, self.state.stop
        if stop is None or not m.present or wall - self._last_sample < self.config.sample_period:
            return
        self._last_sample = wall
        self.outlet.publish(
            SignalSampled(wall, stop, m.signal, m.rsrp, m.rsrq, m.sinr, m.technology, self.state.internet)
        )
        if self.state.uplinks:
            for u, probe in zip(m.uplinks, self.state.uplinks, strict=False):
                if probe.standby:
                    continue  # not probed: the modem was on the other SIM
                internet = None if probe.outcome == "" else probe.outcome == "ok"
                self.outlet.publish(UplinkSampled(wall, stop, u.name, u.operator, u.technology, u.signal, internet))
