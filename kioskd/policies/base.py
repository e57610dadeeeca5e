"""The one shape of a policy, after Victron's dbus-systemcalc-py delegates (``delegates/base.py``): a policy
declares the events it wants (``events``), reacts in a few hooks that default to nothing, and talks to the station
only through ``Outlet``. The station is the host: it folds each event into its snapshot, then loops over its
list of policies, handing each the events it declared, in the list's order. Unlike the delegates there are no
singletons: a policy is a plain object built by the composition root, and tests build as many as they like.

What a policy must not do: import a driver or a hardware library, import the station, or hold a reference to it
(the outlet is the whole door)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from kioskd.hal import Event

if TYPE_CHECKING:
    from kioskd.errors import TransitionRefused
    from kioskd.session import Session, WipeOutcome
    from kioskd.station.snapshot import Level, Mode, StationState

# What a policy may ask of the station (it runs in the background; a refusal becomes a notice):
#   travel: the engine runs; arrive: it stopped; shutdown: end the day now (power); idle_wipe: end an idle session
Action = Literal["travel", "arrive", "shutdown", "idle_wipe"]
# What the station asks its policies about before it does it: start the station, open a session
Guarded = Literal["start", "session"]


class Outlet(Protocol):
    """The station as a policy sees it: its snapshot, its notices, its session, and a few requests."""

    @property
    def state(self) -> StationState: ...

    @property
    def session(self) -> Session | None: ...

    def notice(self, topic: str, key: str, level: Level = "info", **params: Any) -> None:
        """Show the agent ``key`` under ``topic`` (one notice per topic: it replaces the previous one)."""
        ...

    def clear_notice(self, topic: str) -> None: ...

    def show(self, **parts: Any) -> None:
        """Replace parts of the snapshot the policy owns (``connectivity=…``, ``session=…``)."""
        ...

    def publish(self, event: Event) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; the station waits for it in ``idle()`` and cancels it at close."""
        ...

    def request(self, action: Action) -> None:
        """Ask the station for a transition (run in the background, refusals shown as notices)."""
        ...

    def touch(self) -> None:
        """Someone works with the citizen (the idle countdown starts again)."""
        ...

    def busy(self) -> bool:
        """Some policy has work with the citizen in progress (a scan), which is not idleness."""
        ...

    async def snapshot(self) -> StationState:
        """The snapshot with the session's counts read now."""
        ...


class Policy:
    """A policy: override ``events`` and the hooks you need; the station calls them, never the reverse."""

    events: ClassVar[tuple[type[Event], ...]] = ()  # the event types ``on_event`` receives
    outlet: Outlet

    def attach(self, outlet: Outlet) -> None:
        """The station hands its outlet over before ``start``."""
        self.outlet = outlet

    def start(self) -> None:
        """The station is built: timers may start."""

    def close(self) -> None:
        """The station closes: cancel timers."""

    def on_event(self, event: Event) -> None:
        """One event of a declared type, after the station folded it into its snapshot."""

    def veto(self, action: Guarded) -> TransitionRefused | None:
        """Why the station must not do ``action`` now, or None."""
        return None

    def touched(self) -> None:
        """Someone works with the citizen (``Outlet.touch``, an API call, a print job)."""

    def busy(self) -> bool:
        """True while work with the citizen is in progress that must not count as idleness."""
        return False

    def session_opened(self) -> None:
        """A citizen session was just opened (``Outlet.session`` is it)."""

    def session_closing(self) -> None:
        """The session is about to be wiped (also called when there is none to wipe)."""

    async def moving(self, target: Mode) -> None:
        """A command moves the station to ``target`` (starting, travelling, ready after a journey, off): what has to
        happen to the devices with it, awaited inside the command."""

    async def wiped(self, outcome: WipeOutcome) -> None:
        """A wipe attempt is over (verified or not); awaited before the command returns."""
