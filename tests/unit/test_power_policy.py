"""The power policy on the simulated van and a manual clock: a battery day, a loose shore plug, the engine."""

from __future__ import annotations

import pytest

from kioskd.clock import ManualClock
from kioskd.errors import TransitionRefused
from kioskd.hal import PowerState
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from kioskd.station.snapshot import StationChanged
from tests.conftest import Rig, make_rig, sim_profile


def _policy(**cfg: float) -> tuple[PowerPolicy, list[PowerDecision], ManualClock]:
    clock = ManualClock()
    decisions: list[PowerDecision] = []
    policy = PowerPolicy(PowerPolicyConfig(**cfg), 1800, clock, decisions.append)
    return policy, decisions, clock


def _on_battery(soc: float, ttg: float | None = None) -> PowerState:
    return PowerState(available=True, shore=False, ignition=False, soc=soc, time_to_go=ttg)


async def test_shore_flapping_within_the_debounce_changes_nothing() -> None:
    policy, decisions, clock = _policy(shore_debounce=5)
    policy.update(PowerState(available=True, shore=True, ignition=False, soc=80))
    for _ in range(5):
        policy.update(PowerState(available=True, shore=False, ignition=False, soc=80))
        await clock.advance(2)
        policy.update(PowerState(available=True, shore=True, ignition=False, soc=80))
        await clock.advance(2)
    assert policy.shore is True
    assert decisions == []


async def test_shore_unplugged_for_longer_than_the_debounce_is_announced_once() -> None:
    policy, decisions, clock = _policy(shore_debounce=5)
    policy.update(PowerState(available=True, shore=True, ignition=False, soc=80))
    policy.update(PowerState(available=True, shore=False, ignition=False, soc=80))
    await clock.advance(4.9)
    assert policy.shore is True
    await clock.advance(0.2)
    assert policy.shore is False
    assert [d.key for d in decisions] == ["power.shore.disconnected"]


async def test_alarms_wait_for_a_first_good_reading() -> None:
    policy, decisions, _ = _policy()
    policy.update(PowerState(available=False))
    assert policy.level == "unknown" and decisions == []
    policy.update(_on_battery(5))
    assert policy.level == "critical"


async def test_warning_clears_only_above_the_hysteresis() -> None:
    policy, decisions, _ = _policy(warn_soc=30, critical_soc=10, hysteresis=3, shore_debounce=0)
    policy.update(_on_battery(40))
    policy.update(_on_battery(29))
    assert policy.level == "warn"
    policy.update(_on_battery(31))
    assert policy.level == "warn", "31 % is within the 3-point hysteresis"
    policy.update(_on_battery(33.5))
    assert policy.level == "ok"
    assert [d.action for d in decisions] == ["notice", "clear"]


async def test_time_to_go_shorter_than_a_session_plus_reserve_refuses_a_session() -> None:
    policy, _, _ = _policy(wipe_reserve=300, shore_debounce=0)
    policy.update(_on_battery(60, ttg=2000))
    refusal = policy.refusal()
    assert refusal is not None and refusal[0] == "refused.power.low" and refusal[1]["minutes"] == 33
    policy.update(_on_battery(60, ttg=2200))
    assert policy.refusal() is None


async def test_time_to_go_is_estimated_from_the_discharge_when_the_backend_has_none() -> None:
    policy, _, clock = _policy(shore_debounce=0)
    for soc in (50.0, 49.0, 48.0, 47.0):
        policy.update(_on_battery(soc))
        await clock.advance(120)
    # 1 % every 120 s -> 47 % lasts 47 * 120 s
    assert policy.time_to_go() == pytest.approx(47 * 120, rel=0.01)


async def test_a_battery_day_warns_refuses_then_ends_the_session_and_shuts_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rig: Rig = await make_rig(
        tmp_path, sim_profile(station={"workspace": "directory"}, **{"devices.power": {"soc": 40, "tick": 10}})
    )
    try:
        await rig.station.start()
        await rig.station.next_citizen()
        await rig.sim("shore", "off")
        await rig.sim("load", "2000")  # a heater on the inverter: the battery drains fast
        await rig.run(10)
        assert rig.station.state.power.shore is False
        warned = refused = False
        for _ in range(400):
            await rig.run(10, step=10)
            keys = {n.key for n in rig.station.state.notices}
            warned |= "power.warn" in keys
            if rig.station.mode == "in_session" and not refused:
                try:
                    await rig.station.next_citizen()
                except TransitionRefused as exc:
                    refused = exc.key == "refused.power.low"
            if rig.station.mode == "off":
                break
        assert warned and refused
        assert rig.station.session is None, "the refused citizen's predecessor was still wiped"
        assert rig.station.mode == "off" and rig.station.state.reason == "power"
        soc = rig.station.state.power.soc
        assert soc is not None and soc > 0, "the shutdown must leave a reserve"
    finally:
        await rig.station.close()


async def test_critical_battery_during_a_session_wipes_it_before_shutting_down(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    workspace = rig.station.session.workspace.root  # type: ignore[union-attr]
    await rig.sim("shore", "off")
    await rig.run(6)
    await rig.sim("soc", "9")
    await rig.station.idle()
    assert rig.station.mode == "off" and rig.station.state.reason == "power"
    assert rig.station.wipes[-1].reason == "power" and rig.station.wipes[-1].verified
    assert not workspace.exists()
    modes = [e.state.mode for e in rig.of(StationChanged) if e.state.mode != e.previous.mode]
    assert modes[-3:] == ["wiping", "shutting_down", "off"]
