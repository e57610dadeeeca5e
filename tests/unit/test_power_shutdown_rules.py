"""Issue 20's power rules on a manual clock and the simulated van: the backend's own critical verdict, silence that is
not shore, and the station's shutdown inhibitor held for a whole session and wiped under on PrepareForShutdown."""

from __future__ import annotations

from pathlib import Path

from drivers.sim.host import SimHost
from kioskd.clock import ManualClock
from kioskd.hal import PowerState, ShutdownPrepared
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from tests.conftest import Rig


def _policy(**cfg: float) -> tuple[PowerPolicy, list[PowerDecision], ManualClock]:
    clock = ManualClock()
    decisions: list[PowerDecision] = []
    return PowerPolicy(PowerPolicyConfig(**cfg), 1800, clock, decisions.append), decisions, clock


def test_the_backends_critical_verdict_shuts_down_at_full_charge_and_on_shore() -> None:
    policy, decisions, _ = _policy(shore_debounce=0)
    policy.update(PowerState(available=True, shore=True, soc=100))
    policy.update(PowerState(available=True, shore=True, soc=100, critical=True))  # FSD OL
    assert [(d.action, d.key) for d in decisions] == [("shutdown", "power.critical.ups")]
    assert policy.refusal() == ("refused.power.critical", {}) and not policy.can_start()


def test_the_critical_verdict_needs_no_charge_figure() -> None:
    policy, decisions, _ = _policy(shore_debounce=0)
    policy.update(PowerState(available=True, shore=False))  # a DC-UPS: no battery.charge
    assert decisions == [] and policy.level == "unknown"
    policy.update(PowerState(available=True, shore=False, critical=True))
    assert [d.key for d in decisions] == ["power.critical.ups"]


async def test_a_silent_source_counts_as_off_shore_after_the_timeout_and_not_before() -> None:
    policy, decisions, clock = _policy(shore_debounce=0, silence_timeout=60)
    policy.update(PowerState(available=True, shore=True, soc=90))
    policy.update(PowerState(available=False, detail="no data"))
    await clock.advance(59)
    assert policy.shore is True and decisions == []  # a short silence (a replug) is no news
    await clock.advance(2)
    assert policy.shore is False and policy.silent == ("power",)
    assert [d.key for d in decisions] == ["power.silent", "power.shore.disconnected"]


async def test_a_part_silent_while_the_others_talk_is_named_and_its_return_clears_it() -> None:
    policy, decisions, clock = _policy(shore_debounce=0, silence_timeout=30, warn_soc=30, critical_soc=10)
    policy.update(PowerState(available=True, shore=True, soc=25))
    policy.update(PowerState(available=True, shore=None, soc=25, silent=("charger",)))  # the charger went quiet
    await clock.advance(31)
    assert policy.silent == ("charger",) and policy.shore is False
    assert policy.level == "warn"  # judged on the battery monitor's charge, now that shore is not assumed
    policy.update(PowerState(available=True, shore=True, soc=25))
    assert policy.silent == () and policy.shore is True
    assert [d.key for d in decisions] == [
        "power.silent",
        "power.shore.disconnected",
        "power.warn",
        "power.silent",  # cleared
        "power.shore.connected",
        "",  # the warning cleared on shore
    ]


async def test_the_inhibitor_is_held_from_the_sessions_opening_until_its_wipe(rig: Rig) -> None:
    host = rig.devices.host
    assert isinstance(host, SimHost)
    await rig.station.start()
    await rig.station.next_citizen()
    assert [lock.why for lock in host.held] == ["a citizen's session is open"]
    await rig.clock.advance(600)
    assert [lock.why for lock in host.held] == ["a citizen's session is open"]  # not only during the wipe
    await rig.station.next_citizen()
    assert [lock.why for lock in host.held] == ["a citizen's session is open"]  # the next citizen's
    assert [r.what for r in host.history] == ["acquire", "release", "acquire"]


async def test_prepare_for_shutdown_wipes_the_open_session_then_releases_and_does_not_power_off(
    rig: Rig, tmp_path: Path
) -> None:
    host = rig.devices.host
    assert isinstance(host, SimHost)
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    rig.bus.publish(ShutdownPrepared())
    await rig.station.idle()
    assert rig.station.mode == "off" and not session.workspace.root.exists()
    assert rig.station.last_wipe is not None and rig.station.last_wipe.verified
    assert host.held == [] and not host.powered_off
