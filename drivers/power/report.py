"""How every power backend reports: it keeps the backend's last ``PowerState`` and turns each new one into the events
the station expects (``ShoreChanged``/``IgnitionChanged`` on a flip, ``PowerChanged``, ``DeviceFault`` raised and
cleared). It reads no device, holds no timer and runs on the event loop's thread only."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kioskd.hal import Event, FaultReporter, IgnitionChanged, PowerChanged, PowerState, ShoreChanged

NO_DATA = "power.no-data"  # catalogue key: the backend lost its source (silent port, daemon gone, device removed)


def alarm_key(name: str) -> str:
    """The catalogue key of a backend alarm such as ``low-voltage``."""
    return f"power.alarm.{name}"


class PowerReport:
    """The last state of one backend and the faults it has raised.

    Flips are judged against the last *known* shore and ignition, kept across a loss of data, so that a van unplugged
    while its battery monitor was silent still gets its ``ShoreChanged`` when the data comes back."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self.state = PowerState()
        self._faults = FaultReporter("power", emit)
        self._shore: bool | None = None
        self._ignition: bool | None = None

    def publish(self, state: PowerState, faults: Iterable[str] = ()) -> None:
        """Take ``state`` and the complete set of faults active now; emit only what changed."""
        if state.shore is not None:
            if self._shore is not None and state.shore != self._shore:
                self._emit(ShoreChanged(state.shore))
            self._shore = state.shore
        if state.ignition is not None:
            if self._ignition is not None and state.ignition != self._ignition:
                self._emit(IgnitionChanged(state.ignition))
            self._ignition = state.ignition
        if state != self.state:
            self.state = state
            self._emit(PowerChanged(state))
        self._faults.replace(faults)

    @property
    def faults(self) -> tuple[str, ...]:
        """The faults active now, oldest first."""
        return self._faults.active

    def forget(self) -> None:
        """Back to "no data" without a word (the backend is closing; nobody should be told the battery vanished)."""
        self.state = PowerState()
        self._faults.forget()
