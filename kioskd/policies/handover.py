"""Handing the controls to the citizen: "Main au citoyen" enables the citizen's own input devices (a touchscreen
mapped onto the citizen's screen in every layout, a keyboard, a mouse); "Saisie confidentielle" does the same while
the agent's screen shows a curtain of its own and the agent's keyboard and mouse are disabled, until the agent's
action (the button's short press, the panel, ``kioskctl``), its timeout, the privacy curtain or the wipe ends it.
By default the citizen's devices are disabled: the citizen watches. It counts hand-overs and confidential entries
(how many, how long) for the receipt, never what was typed; it drives ``kioskd.hal`` contracts only."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from kioskd.errors import TransitionRefused
from kioskd.hal import Clock, Displays, DisplaysChanged, Event, Inputs, Output, TimerHandle
from kioskd.policies.base import Policy

if TYPE_CHECKING:
    from kioskd.profile import HandoverConfig
    from kioskd.session.wipe import WipeContext, WipeOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandoverState:
    """What the agent sees of it: whether the citizen has the controls, and this session's counts (no content)."""

    handover: bool = False  # "Main au citoyen": the citizen's devices are live
    confidential: bool = False  # "Saisie confidentielle": and the agent's screen and devices are not
    since: float | None = None  # wall clock time the current hand-over or entry began
    handovers: int = 0
    handover_seconds: float = 0.0
    confidential_entries: int = 0
    confidential_seconds: float = 0.0

    def note(self) -> str:
        """The receipt's words for this session: counts and seconds, nothing typed."""
        return (
            f"{self.handovers} handover(s) {self.handover_seconds:.0f} s, "
            f"{self.confidential_entries} confidential {self.confidential_seconds:.0f} s"
        )


class HandoverPolicy(Policy):
    events: ClassVar[tuple[type[Event], ...]] = (DisplaysChanged,)

    def __init__(self, config: HandoverConfig, inputs: Inputs, displays: Displays, clock: Clock) -> None:
        self.config = config
        self.inputs = inputs
        self.displays = displays
        self.clock = clock
        self._timer: TimerHandle | None = None
        self._started: dict[str, float] = {}  # "handover" / "confidential" → monotonic start
        self._mapped: tuple[Output, ...] = ()  # the outputs the citizen's devices were last mapped among
        self._counts: dict[str, HandoverState] = {}  # a closing session's counts, for its wipe's receipt and visit

    @property
    def state(self) -> HandoverState:
        return self.outlet.state.handover

    # ------------------------------------------------------------------------------------------- commands
    async def set_handover(self, on: bool | None = None) -> HandoverState:
        """ "Main au citoyen" on, off or toggled (``None``); refused without a citizen or under the curtain."""
        target = (not self.state.handover) if on is None else on
        if target:
            self._check("handover")
            if not self.state.handover and not self.state.confidential:
                await self._citizen_live(True)
            self._begin("handover")
        elif self.state.handover:
            if not self.state.confidential:
                await self.inputs.set_enabled("citizen", False)
            self._end("handover")
        self.outlet.touch()
        return self.state

    async def set_confidential(self, on: bool | None = None) -> HandoverState:
        """ "Saisie confidentielle" on, off or toggled: the agent's screen curtained first (the agent never sees
        the citizen type), then the agent's devices off and the citizen's on; undone in the reverse order."""
        target = (not self.state.confidential) if on is None else on
        if target and not self.state.confidential:
            self._check("confidential")
            await self.displays.set_agent_curtain(True)
            await self.inputs.set_enabled("agent", False)
            if not self.state.handover:
                await self._citizen_live(True)
            self._begin("confidential")
            self._cancel()
            self._timer = self.clock.call_later(self.config.confidential_timeout, self._timed_out)
        elif not target and self.state.confidential:
            await self._end_confidential()
        self.outlet.touch()
        return self.state

    async def end_all(self) -> None:
        """The citizen's controls taken back (the privacy curtain, the end of the session)."""
        if self.state.confidential:
            await self._end_confidential()
        if self.state.handover:
            await self.inputs.set_enabled("citizen", False)
            self._end("handover")

    def ends_on_press(self) -> bool:
        """A short press of the button ends a confidential entry (the agent's devices are off: the button is the
        agent's way back) instead of calling the next citizen."""
        return self.state.confidential

    # ------------------------------------------------------------------------------------------- hooks
    def on_event(self, event: Event) -> None:
        if not isinstance(event, DisplaysChanged):
            return
        displays = event.state
        if displays.curtain and (self.state.handover or self.state.confidential):
            self.outlet.spawn(self.end_all())  # the curtain came by another way: the citizen's devices go dark
        citizen = next((o for o in displays.outputs if o.role == "citizen" and o.connected and o.width), None)
        # the matrix is the citizen output's share of the whole screen: any output that moves changes it
        if citizen is not None and displays.outputs != self._mapped:
            self._mapped = displays.outputs
            self.outlet.spawn(self.inputs.map_citizen(citizen))

    def session_closing(self) -> None:
        """The wipe comes: the counts are frozen for its receipt; its ``inputs`` handler does the devices."""
        self._cancel()
        for what in tuple(self._started):
            self._end(what)
        if self.outlet.session is not None:
            self._counts[self.outlet.session.id] = self.state
        self.outlet.show(handover=HandoverState())

    def close(self) -> None:
        self._cancel()

    async def wipe(self, context: WipeContext) -> str:
        """The wipe's handler: the agent's curtain down, the citizen's devices off and the agent's on, read back
        (a device still live on the citizen's side fails the wipe); its note is this session's counts."""
        await self.displays.set_agent_curtain(False)
        problems = await self.inputs.restore()
        if self.displays.state.agent_curtain:
            problems.append("the agent's curtain is still shown")
        if problems:
            raise RuntimeError("input devices not restored: " + "; ".join(problems))
        counts = self._counts.get(context.session_id)
        return counts.note() if counts is not None else ""

    async def wiped(self, outcome: WipeOutcome) -> None:
        """The visit the wipe ended gets this session's counts (the recorder, after this policy, writes it)."""
        counts = self._counts.pop(outcome.session, None) if outcome.verified else self._counts.get(outcome.session)
        receipt = outcome.receipt
        if counts is None or receipt is None or receipt.visit is None:
            return
        visit = dataclasses.replace(
            receipt.visit,
            handovers=counts.handovers,
            handover_seconds=counts.handover_seconds,
            confidential=counts.confidential_entries,
            confidential_seconds=counts.confidential_seconds,
        )
        outcome.receipt = dataclasses.replace(receipt, visit=visit)

    # ------------------------------------------------------------------------------------------- inside
    def _check(self, what: str) -> None:
        if self.outlet.session is None or self.outlet.state.mode != "in_session":
            raise TransitionRefused("no citizen session", where="handover", key="refused.no_session")
        if self.outlet.state.displays.curtain:
            raise TransitionRefused("the citizen screen is hidden", where="handover", key=f"refused.{what}.curtain")

    async def _citizen_live(self, on: bool) -> None:
        outputs = self.outlet.state.displays.outputs
        citizen = next((o for o in outputs if o.role == "citizen" and o.connected and o.width), None)
        if on and citizen is not None:
            await self.inputs.map_citizen(citizen)  # mapped before it is live: the first touch lands right
            self._mapped = outputs
        await self.inputs.set_enabled("citizen", on)

    async def _end_confidential(self) -> None:
        self._cancel()
        await self.inputs.set_enabled("agent", True)
        if not self.state.handover:
            await self.inputs.set_enabled("citizen", False)
        await self.displays.set_agent_curtain(False)
        self._end("confidential")

    def _timed_out(self) -> None:
        self._timer = None
        if self.state.confidential:
            log.info("confidential entry ended by its timeout (%.0f s)", self.config.confidential_timeout)
            self.outlet.spawn(self._end_confidential())

    def _begin(self, what: str) -> None:
        if what in self._started:
            return
        self._started[what] = self.clock.monotonic()
        state = self.state
        if what == "handover":
            state = dataclasses.replace(state, handover=True, handovers=state.handovers + 1)
        else:
            state = dataclasses.replace(state, confidential=True, confidential_entries=state.confidential_entries + 1)
        self.outlet.show(handover=dataclasses.replace(state, since=state.since or self.clock.wall()))

    def _end(self, what: str) -> None:
        started = self._started.pop(what, None)
        if started is None:
            return
        seconds = round(self.clock.monotonic() - started, 1)
        state = self.state
        if what == "handover":
            state = dataclasses.replace(state, handover=False, handover_seconds=state.handover_seconds + seconds)
        else:
            state = dataclasses.replace(
                state, confidential=False, confidential_seconds=state.confidential_seconds + seconds
            )
        self.outlet.show(handover=dataclasses.replace(state, since=None if not self._started else state.since))

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
