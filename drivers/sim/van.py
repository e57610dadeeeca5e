"""The simulated van: what its parts share (the timeline of recorded changes, the fault verbs collected from every
part), and the ``Simulation`` the daemon finds in the shared models.

Each part's physics and verbs live in its own view (``drivers/sim/<kind>.py``); the van only holds them together,
as OctoPrint's virtual printer dispatches a command to the method of its name. It imports only ``kioskd.hal``."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from kioskd.hal import Clock, DriverContext, DriverKind, Event, StateEvent

# The order ``kioskctl sim`` lists the verbs in: the van's parts as a technician walks round it.
VERB_ORDER: tuple[DriverKind, ...] = (
    "power",
    "modem",
    "displays",
    "inputs",
    "scanner",
    "printer",
    "button",
    "camera",
    "audio",
    "media",
)


class Record(NamedTuple):
    """One change on the van's timeline, at its simulated time."""

    at: float  # the clock's monotonic seconds
    device: str  # a device kind, or "host"
    what: str  # the change: "shore", "led", "set" (a state's fields), "reset", "acquire" …
    value: Any = None


class SimHistory:
    """The van's timeline (the latest 10,000 records), as gpiozero's ``MockPin`` keeps its states: tests assert on
    it with ``assert_states`` and ``assert_states_and_times`` (``tests.conftest.Rig.history``)."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._records: deque[Record] = deque(maxlen=maxlen)

    def append(self, record: Record) -> None:
        self._records.append(record)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def select(self, device: str, what: str | None = None) -> list[Record]:
        """The records of ``device`` (only its ``what`` changes, when given), oldest first."""
        return [r for r in self._records if r.device == device and (what is None or r.what == what)]

    def states(self, device: str, what: str | None = None) -> list[Any]:
        """The values recorded for ``device``'s ``what``; without ``what``, the changes' names."""
        return [r.value if what is not None else r.what for r in self.select(device, what)]

    def assert_states(self, expected: Sequence[Any], *, device: str, what: str | None = None) -> None:
        """The states (see ``states``) are exactly ``expected``, in order."""
        seen = self.states(device, what)
        assert seen == list(expected), f"{device} {what or 'changes'}: {seen!r}, expected {list(expected)!r}"

    def assert_states_and_times(
        self, expected: Sequence[tuple[float, Any]], *, device: str, what: str | None = None
    ) -> None:
        """The (simulated time, state) pairs are exactly ``expected``, in order."""
        seen = [(r.at, r.value if what is not None else r.what) for r in self.select(device, what)]
        assert seen == list(expected), f"{device} {what or 'changes'}: {seen!r}, expected {list(expected)!r}"


class Verb(NamedTuple):
    help: str
    run: Callable[[list[str]], Awaitable[str]]


class SimView:
    """Base of the sim backends: a view on the van holding its own part's physics, started and stopped with it.

    A view's fault verbs are its ``verb_<name>`` methods (``async (args: list[str]) -> str``, the docstring's first
    line is the help); the van collects them by name. A view publishes its state only while started, like a real
    backend."""

    kind: ClassVar[DriverKind]

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.clock: Clock = ctx.clock
        self.started = False
        self.van = SimVan.of(ctx)
        self.van.attach(self)

    def emit(self, event: Event) -> None:
        self.ctx.emit(event)

    def record(self, what: str, value: Any = None) -> None:
        self.van.history.append(Record(self.clock.monotonic(), self.kind, what, value))

    def changed(self) -> StateEvent:
        """The event carrying this view's whole state."""
        raise NotImplementedError

    def publish(self) -> None:
        if self.started:
            self.emit(self.changed())

    async def start(self) -> None:
        self.started = True
        self.publish()

    async def close(self) -> None:
        self.started = False

    def verbs(self) -> dict[str, Verb]:
        found: dict[str, Verb] = {}
        for cls in reversed(type(self).__mro__):
            for name in vars(cls):
                if name.startswith("verb_"):
                    method = getattr(self, name)
                    found[name.removeprefix("verb_")] = Verb(" ".join((inspect.getdoc(method) or "").split()), method)
        return found


class SimVan:
    """The whole van: one per daemon (``DriverContext.shared_model``), created by the first sim view; the views
    attach themselves and reach each other through it (lit screens draw on the battery)."""

    def __init__(self, ctx: DriverContext) -> None:
        self.clock = ctx.clock
        self.history = SimHistory()
        self.parts: dict[DriverKind, SimView] = {}

    @classmethod
    def of(cls, ctx: DriverContext) -> SimVan:
        van: SimVan = ctx.shared_model("sim.van", lambda: cls(ctx))
        ctx.shared_model("sim.simulation", lambda: VanSimulation(van))
        return van

    def attach(self, view: SimView) -> None:
        self.parts[view.kind] = view

    def part(self, kind: DriverKind) -> SimView | None:
        return self.parts.get(kind)

    def record(self, device: str, what: str, value: Any = None) -> None:
        self.history.append(Record(self.clock.monotonic(), device, what, value))

    def verbs(self) -> dict[str, Verb]:
        """Every attached view's verbs, in ``VERB_ORDER``."""
        table: dict[str, Verb] = {}
        for kind in VERB_ORDER:
            view = self.parts.get(kind)
            if view is not None:
                table.update(view.verbs())
        return table


class VanSimulation:
    """The ``Simulation`` contract over the van (found by the daemon in the shared models)."""

    def __init__(self, van: SimVan) -> None:
        self.van = van

    @property
    def history(self) -> SimHistory:
        return self.van.history

    def verbs(self) -> Mapping[str, str]:
        return {name: verb.help for name, verb in self.van.verbs().items()}

    async def apply(self, verb: str, args: list[str]) -> str:
        table = self.van.verbs()
        if verb not in table:
            raise KeyError(verb)
        return await table[verb].run(args)


# ------------------------------------------------------------------------------------------- verb arguments
def on_off(args: list[str], verb: str) -> bool:
    if len(args) != 1 or args[0] not in ("on", "off"):
        raise ValueError(f"{verb}: expected 'on' or 'off'")
    return args[0] == "on"


def number(args: list[str], verb: str, low: float, high: float) -> float:
    try:
        value = float(args[0])
    except (IndexError, ValueError):
        raise ValueError(f"{verb}: expected a number between {low:g} and {high:g}") from None
    if not low <= value <= high:
        raise ValueError(f"{verb}: expected a number between {low:g} and {high:g}, got {value:g}")
    return value


def choice(args: list[str], verb: str, choices: tuple[str, ...]) -> str:
    if not args or args[0] not in choices:
        raise ValueError(f"{verb}: expected one of {', '.join(choices)}")
    return args[0]
