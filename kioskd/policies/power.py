"""The power policy: shore, battery and ignition readings in; warnings, refusals and shutdown decisions out.

Plain rules on the injected clock (no driver, no hardware library): the shore plug is debounced so a loose plug
does not flap the station; alarms arm only after a first good reading; thresholds clear with hysteresis; a new
session is refused when the time-to-go cannot cover a whole session plus the wipe reserve.

A flip of the shore plug or the ignition comes from the driver as ``ShoreChanged``/``IgnitionChanged`` and is acted
on at once; every ``PowerChanged`` reading carries both too, which covers a driver's first reading (not a flip)
and a flip announced while the reading was unavailable. The decisions go to the station through the outlet (or
to ``decide``, for a test that wants to see them bare).

The backend's own verdict (``PowerState.critical``: NUT's ``FSD``, or ``OB LB``) is critical at once, whatever the
charge and even on shore. Silence is not shore: a source (or a part of a combined one) that stays without data for
``silence_timeout`` gets a notice naming it, and an unknown shore then counts as unplugged, so a charger that goes
quiet with the mains cannot leave the last ``shore=True`` standing."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kioskd.errors import TransitionRefused
from kioskd.hal import Clock, Event, IgnitionChanged, PowerChanged, PowerState, ShoreChanged, TimerHandle
from kioskd.policies.base import Guarded, Policy
from kioskd.profile import PowerPolicyConfig

Level = Literal["unknown", "ok", "warn", "critical"]


@dataclass(frozen=True)
class PowerDecision:
    """What the policy asks of the station: a notice to show, or an action."""

    action: Literal["notice", "clear", "shutdown", "travel", "arrive"]
    key: str = ""
    level: Literal["info", "warning", "error"] = "info"
    soc: float | None = None


class PowerPolicy(Policy):
    events = (PowerChanged, ShoreChanged, IgnitionChanged)

    def __init__(
        self,
        config: PowerPolicyConfig,
        session_length: float,
        clock: Clock,
        decide: Callable[[PowerDecision], None] | None = None,
    ) -> None:
        self.config = config
        self.session_length = session_length
        self.clock = clock
        self.decide = decide or self._apply
        self.level: Level = "unknown"
        self.shore: bool | None = None  # debounced
        self.ignition: bool | None = None
        self.last: PowerState = PowerState()
        self._shore_raw: bool | None = None
        self._shore_timer: TimerHandle | None = None
        self._samples: deque[tuple[float, float]] = deque()  # (monotonic, soc) while on battery
        self._silence_timer: TimerHandle | None = None
        self.silent: tuple[str, ...] = ()  # the parts named in the silence notice, once the timeout passed

    # ------------------------------------------------------------------------------------------- hooks
    def on_event(self, event: Event) -> None:
        if isinstance(event, PowerChanged):
            self.update(event.state)
        elif not self.last.available:
            return  # a flip while the readings are gone: the reading that comes back carries it
        elif isinstance(event, ShoreChanged):
            self._track_shore(event.connected)
        elif isinstance(event, IgnitionChanged):
            self._track_ignition(event.on)

    def close(self) -> None:
        for timer in (self._shore_timer, self._silence_timer):
            if timer is not None:
                timer.cancel()
        self._shore_timer = self._silence_timer = None

    def veto(self, action: Guarded) -> TransitionRefused | None:
        if action == "start":
            if not self.can_start():
                return TransitionRefused("battery critical", where="power", key="refused.power.critical")
            return None
        refusal = self.refusal()
        if refusal is None:
            return None
        key, params = refusal
        return TransitionRefused("not enough battery for a session", where="power", key=key, params=params)

    def _apply(self, decision: PowerDecision) -> None:
        """A decision, as the station shows and does it."""
        outlet = self.outlet
        if decision.action == "notice":
            if decision.key == "power.silent":
                outlet.notice("power.silent", decision.key, decision.level, part=", ".join(self.silent) or "power")
                return
            soc = None if decision.soc is None else round(decision.soc)
            # the shore plug's news has its own line: it must not hide a low-battery warning (nor the reverse)
            topic = "power.shore" if decision.key.startswith("power.shore.") else "power"
            outlet.notice(topic, decision.key, decision.level, **({"soc": soc} if soc is not None else {}))
        elif decision.action == "clear":
            outlet.clear_notice("power.silent" if decision.key == "power.silent" else "power")
        elif decision.action == "shutdown":
            outlet.notice("power", decision.key, "error", soc=round(decision.soc or 0))
            outlet.request("shutdown")
        elif decision.action in ("travel", "arrive"):
            outlet.notice("power.ignition", decision.key)
            outlet.request(decision.action)

    # ------------------------------------------------------------------------------------------- readings
    def update(self, state: PowerState) -> None:
        """One reading of the power source (shore, ignition, state of charge, time-to-go)."""
        now = self.clock.monotonic()
        self.last = state
        self._track_silence(state)
        if not state.available:
            return
        self._track_shore(state.shore)
        self._track_ignition(state.ignition)
        if state.soc is not None:
            if self.shore:
                self._samples.clear()
            else:
                self._samples.append((now, state.soc))
                while self._samples and now - self._samples[0][0] > self.config.discharge_window:
                    self._samples.popleft()
        self._evaluate_level()

    def _track_silence(self, state: PowerState) -> None:
        """Arm the silence timeout on the first reading without data (the whole source or one of its parts); a
        source that talks again disarms it and clears the notice."""
        quiet = not state.available or bool(state.silent)
        if quiet:
            if self._silence_timer is None and not self.silent:
                self._silence_timer = self.clock.call_later(self.config.silence_timeout, self._silence_passed)
            elif self.silent and state.silent and state.silent != self.silent:
                self.silent = state.silent  # another part went quiet meanwhile: the notice names them all
                self.decide(PowerDecision("notice", "power.silent", "warning"))
            return
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None
        if self.silent:
            self.silent = ()
            self.decide(PowerDecision("clear", "power.silent"))

    def _silence_passed(self) -> None:
        self._silence_timer = None
        state = self.last
        self.silent = state.silent or ("power",)
        self.decide(PowerDecision("notice", "power.silent", "warning"))
        if not state.available or state.shore is None:
            # unknown is not shore: count the plug as pulled (the timeout was the debounce)
            self._shore_raw = False
            if self._shore_timer is not None:
                self._shore_timer.cancel()
                self._shore_timer = None
            self._settle_shore(False, announce=self.shore is not None)

    def _track_ignition(self, on: bool | None) -> None:
        if on is None or on == self.ignition:
            return
        first = self.ignition is None
        self.ignition = on
        if on:
            self.decide(PowerDecision("travel", "power.ignition.on", "info"))
        elif not first:
            self.decide(PowerDecision("arrive", "power.ignition.off", "info"))

    def _track_shore(self, raw: bool | None) -> None:
        if raw is None or raw == self._shore_raw:
            return
        self._shore_raw = raw
        if self._shore_timer is not None:
            self._shore_timer.cancel()
            self._shore_timer = None
        if self.shore is None or self.config.shore_debounce == 0:
            self._settle_shore(raw, announce=self.shore is not None)
            return
        if raw == self.shore:
            return  # back to the settled value within the debounce: nothing happened
        self._shore_timer = self.clock.call_later(self.config.shore_debounce, lambda: self._settle_shore(raw))

    def _settle_shore(self, value: bool, announce: bool = True) -> None:
        self._shore_timer = None
        if value == self.shore:
            return
        self.shore = value
        if announce:
            key = "power.shore.connected" if value else "power.shore.disconnected"
            self.decide(PowerDecision("notice", key, "info" if value else "warning"))
        self._evaluate_level()

    # ------------------------------------------------------------------------------------------- levels
    def _evaluate_level(self) -> None:
        soc = self.last.soc
        flagged = self.last.available and self.last.critical  # the backend's own verdict, even on shore (FSD OL)
        if not flagged and (soc is None or self.shore is None):
            return
        cfg = self.config
        previous = self.level
        if flagged:
            level: Level = "critical"
        elif soc is None:
            return  # unreachable (no charge and not flagged returned above); kept for the type checker
        elif self.shore:
            level = "ok"
        elif soc <= cfg.critical_soc or ((ttg := self.time_to_go()) is not None and ttg <= cfg.wipe_reserve):
            level = "critical"
        elif soc <= cfg.warn_soc:
            level = "warn"
        elif previous in ("warn", "critical") and soc < cfg.warn_soc + cfg.hysteresis:
            level = "warn"  # hysteresis: stay warned until the battery climbs clearly above the threshold
        else:
            level = "ok"
        if previous == "critical" and level != "ok":
            level = "critical"  # critical only clears on shore power
        if level == previous:
            return
        self.level = level
        if level == "critical":
            key = "power.critical.ups" if flagged else "power.critical"
            self.decide(PowerDecision("shutdown", key, "error", soc))
        elif level == "warn":
            self.decide(PowerDecision("notice", "power.warn", "warning", soc))
        elif level == "ok" and previous != "unknown":
            self.decide(PowerDecision("clear"))

    def time_to_go(self) -> float | None:
        """Seconds of autonomy: the backend's figure when it has one, else the recent discharge rate."""
        if self.shore:
            return None
        if self.last.time_to_go is not None:
            return self.last.time_to_go
        if len(self._samples) < 2:
            return None
        (t0, s0), (t1, s1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 60 or s1 >= s0:
            return None
        rate = (s0 - s1) / (t1 - t0)  # % per second
        return s1 / rate

    # ------------------------------------------------------------------------------------------- questions
    def refusal(self) -> tuple[str, dict[str, object]] | None:
        """Why a new session must not open now (catalogue key, parameters), or None."""
        if self.level == "critical":
            return "refused.power.critical", {}
        ttg = self.time_to_go()
        if ttg is not None and ttg < self.session_length + self.config.wipe_reserve:
            return "refused.power.low", {"minutes": int(ttg // 60)}
        return None

    def can_start(self) -> bool:
        return self.level != "critical"
