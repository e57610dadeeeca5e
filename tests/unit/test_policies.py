"""The station as the host of its policies: declared events only, hooks in list order, one outlet; the wipe's
handler registry; the power policy acting on the drivers' flip events."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.hal import Event, IgnitionChanged, PowerChanged, PowerState, ShoreChanged
from kioskd.policies import roster
from kioskd.policies.base import Policy
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from kioskd.records.store import Store
from kioskd.session import WipeContext
from kioskd.session.wipe import WipeHandlers, standard_handlers
from kioskd.station import Station
from kioskd.station.snapshot import StationChanged
from tests.conftest import Rig, make_rig


class Watcher(Policy):
    """A policy that wants power readings only, and notes every hook the station calls."""

    events = (PowerChanged,)

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.hooks: list[str] = []

    def on_event(self, event: Event) -> None:
        self.seen.append(event)

    def touched(self) -> None:
        self.hooks.append("touched")

    def session_closing(self) -> None:
        self.hooks.append("closing")

    async def wiped(self, outcome: object) -> None:
        self.hooks.append("wiped")


async def test_a_policy_gets_only_the_events_it_declared_and_the_hooks_in_order(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    await rig.station.idle()
    await rig.station.close()  # the rig's own station: this test builds one with a list of its own
    watcher = Watcher()
    station = Station(
        rig.station.profile,
        rig.devices,
        rig.bus,
        rig.clock,
        rig.station.sessions,
        policies=[*roster.standard(rig.station.profile, rig.devices, rig.clock), watcher],
    )
    try:
        await rig.sim("soc", "55")
        await station.start()
        await station.next_citizen()
        await rig.drive(station.next_citizen())
        await station.idle()
        assert watcher.seen and all(isinstance(e, PowerChanged) for e in watcher.seen)
        assert not any(isinstance(e, StationChanged) for e in watcher.seen)
        assert watcher.hooks[:4] == ["touched", "closing", "wiped", "touched"], watcher.hooks
    finally:
        await station.close()
        for _, device in rig.devices.all():
            await device.close()


async def test_a_registered_wipe_handler_runs_in_every_wipe_and_its_verdict_is_on_the_receipt(rig: Rig) -> None:
    ran: list[str] = []

    async def usb_stick(context: WipeContext) -> None:
        ran.append(context.session_id)

    rig.station.sessions.handlers.register("usb_stick", usb_stick)
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    await rig.drive(rig.station.next_citizen())
    assert ran == [session.id]
    receipt = (await Store(rig.state_dir / "kioskd.sqlite").receipts(1))[0]
    names = [h["name"] for h in receipt.handlers]
    assert "usb_stick" in names and names[-1] == "workspace", "a handler runs before the workspace goes"


async def test_a_command_asked_just_before_the_station_closes_is_dropped_cleanly(rig: Rig) -> None:
    """A policy's command spawned in the last turn before close (an LED, a power sample) never runs; it is closed
    with its task, not left for the garbage collector to report as a coroutine never awaited."""
    ran: list[str] = []

    async def command() -> None:
        ran.append("ran")

    coro = command()
    rig.station.spawn(coro)
    await rig.station.close()
    await rig.station.idle()
    assert ran == [] and not rig.station._tasks
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED, "left for the collector: 'never awaited'"


def test_a_wipe_handler_name_is_registered_once() -> None:
    handlers = standard_handlers()
    with pytest.raises(ValueError, match="clipboard"):
        handlers.register("clipboard", dict(standard_handlers().stages())["handlers"]["clipboard"])
    assert WipeHandlers().names() == []


async def test_the_power_policy_acts_on_the_drivers_flip_events_before_the_next_reading() -> None:
    clock = ManualClock()
    decisions: list[PowerDecision] = []
    policy = PowerPolicy(PowerPolicyConfig(shore_debounce=0), 1800, clock, decisions.append)
    policy.on_event(PowerChanged(PowerState(available=True, shore=True, ignition=False, soc=80)))
    policy.on_event(ShoreChanged(False))
    assert policy.shore is False and [d.key for d in decisions] == ["power.shore.disconnected"]
    policy.on_event(IgnitionChanged(True))
    assert [d.action for d in decisions][-1] == "travel"
    # the reading that follows carries the same flips: nothing is decided twice
    policy.on_event(PowerChanged(PowerState(available=True, shore=False, ignition=True, soc=80)))
    assert [d.key for d in decisions] == ["power.shore.disconnected", "power.ignition.on"]
