"""One power source made of several backends, each giving the fields it knows (e.g. the charge from VE.Direct, shore
and ignition from GPIO contacts).

It builds its parts, intercepts what they emit and reports one merged state; it must not talk to hardware itself."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from functools import partial
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from drivers.power.report import PowerReport
from kioskd.hal import (
    DeviceFault,
    DriverContext,
    DriverOptions,
    Event,
    IgnitionChanged,
    PowerChanged,
    PowerSource,
    PowerState,
    ShoreChanged,
)

FieldName = Literal["shore", "ignition", "soc", "time_to_go", "voltage", "current", "power", "charging"]
FIELDS: tuple[FieldName, ...] = get_args(FieldName)


class CombinedOptions(DriverOptions):
    """``parts``: name → that backend's own options, with ``driver`` (default: the part's name).
    ``fields``: field → the part that gives it; a field not named comes from the first part (in profile order) that
    has a value for it."""

    parts: dict[str, dict[str, Any]] = Field(min_length=1)
    fields: dict[FieldName, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> CombinedOptions:
        for name, options in self.parts.items():
            driver = options.get("driver", name)
            if not isinstance(driver, str) or driver == "combined":
                raise ValueError(f"part {name!r}: driver must name another power backend, got {driver!r}")
        for field, part in self.fields.items():
            if part not in self.parts:
                raise ValueError(f"field {field!r} comes from part {part!r}, which is not among the parts")
        return self


class CombinedPower:
    """A ``PowerSource`` merging its parts.

    Parts are built through ``DriverContext.build_part`` (the daemon's loader: the ``kioskd.drivers`` entry
    points) rather than by importing the sibling modules: any installed power backend can then be a part, a vehicle
    integrator's own or the simulator, and a misspelt driver gets the same error as at the top level. Each part
    gets a child context whose ``emit`` lands here: its ``PowerChanged`` and ``DeviceFault`` feed the merge, its
    ``ShoreChanged`` and ``IgnitionChanged`` are dropped because they are recomputed from the merged state (only
    the part that gives the shore may flip it)."""

    options_model: ClassVar[type[CombinedOptions]] = CombinedOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit = ctx.emit
        self._report = PowerReport(ctx.emit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.parts: dict[str, PowerSource] = {}
        self._states: dict[str, PowerState] = {}
        self._faults: dict[str, list[str]] = {}
        for name, section in self.options.parts.items():
            options = dict(section)
            driver = str(options.pop("driver", name))
            part: PowerSource = ctx.build_part(
                "power", driver, options, partial(self._from_part, name), f"parts.{name}"
            )
            self.parts[name] = part
            self._states[name] = PowerState()
            self._faults[name] = []

    @property
    def state(self) -> PowerState:
        return self._report.state

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        started: list[PowerSource] = []
        try:
            for part in self.parts.values():
                await part.start()
                started.append(part)
        except BaseException:
            for part in reversed(started):
                with contextlib.suppress(Exception):
                    await part.close()
            raise

    async def close(self) -> None:
        results = await asyncio.gather(*(part.close() for part in self.parts.values()), return_exceptions=True)
        self._report.forget()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # ------------------------------------------------------------------------------------------- parts
    def _from_part(self, name: str, event: Event) -> None:
        """A part's emit: safe from any thread, like every ``DriverContext.emit``."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._on_part_event, name, event)
        else:
            self._on_part_event(name, event)

    def _on_part_event(self, name: str, event: Event) -> None:
        if isinstance(event, PowerChanged):
            self._states[name] = event.state
        elif isinstance(event, DeviceFault) and event.kind == "power":
            faults = self._faults[name]
            if event.cleared:
                if event.fault in faults:
                    faults.remove(event.fault)
            elif event.fault in faults:
                return  # a part re-raising what it still has: the merged report does that itself
            else:
                faults.append(event.fault)
        elif isinstance(event, ShoreChanged | IgnitionChanged):
            return
        else:
            self._emit(event)
            return
        self._report.publish(self.merged(), [key for faults in self._faults.values() for key in faults])

    def merged(self) -> PowerState:
        """The state the parts give together now."""
        live = {name: state for name, state in self._states.items() if state.available}
        values: dict[str, Any] = {}
        for field in FIELDS:
            source = self.options.fields.get(field)
            if source is not None:
                state = live.get(source)
                values[field] = None if state is None else getattr(state, field)
            else:
                values[field] = next((getattr(s, field) for s in live.values() if getattr(s, field) is not None), None)
        alarms = [state.alarm for state in live.values() if state.alarm]
        details = [f"{name}: {state.detail}" for name, state in self._states.items() if state.detail]
        silent = tuple(name for name, state in self._states.items() if not state.available)
        return PowerState(
            available=bool(live),
            alarm=",".join(alarms) or None,
            detail="; ".join(details),
            critical=any(state.critical for state in live.values()),
            silent=silent,
            **values,
        )
