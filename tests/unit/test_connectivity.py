"""The connectivity policy on the simulated van and a manual clock: probe verdicts, agent messages, recovery steps
and their backoff, and the signal atlas."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.sim.modem import SimModem
from kioskd.cli import render_atlas
from kioskd.errors import ProfileError
from kioskd.policies.connectivity import RecoveryStep, distance_m, stop_at
from kioskd.profile import AtlasStop
from kioskd.records.store import SignalSample, Store
from kioskd.station.snapshot import StationChanged
from tests.conftest import Rig, make_rig, sim_profile

CONNECTIVITY = {"period": 60, "recover_after": 300, "backoff_initial": 120, "backoff_max": 480, "sample_period": 300}


@pytest.fixture
async def van(tmp_path: Path) -> AsyncIterator[Rig]:
    profile = sim_profile(station={"workspace": "directory"}, connectivity=CONNECTIVITY)
    r = await make_rig(tmp_path, profile)
    yield r
    await r.station.close()
    for _, device in r.devices.all():
        await device.close()


def steps(rig: Rig) -> list[tuple[float, str, int]]:
    return [(t, e.action, e.attempt) for t, e in getattr(rig, "_steps", [])]


def record_steps(rig: Rig) -> None:
    seen: list[tuple[float, Any]] = []
    rig._steps = seen  # type: ignore[attr-defined]
    rig.bus.subscribe(lambda e: seen.append((rig.clock.monotonic(), e)), RecoveryStep)


def keys(rig: Rig) -> dict[str, str]:
    return {n.topic: n.key for n in rig.station.state.notices}


async def test_the_first_probe_runs_at_start_and_says_the_internet_works(van: Rig) -> None:
    await van.run(1)
    c = van.station.state.connectivity
    assert (c.internet, c.outcome, c.probe) == (True, "ok", "modem")
    assert not [k for k in keys(van) if k.startswith("connectivity.")]


async def test_link_up_but_no_internet_is_shown_as_such(van: Rig) -> None:
    await van.sim("internet", "down")
    await van.run(61)
    assert van.station.state.modem.connected
    assert van.station.state.connectivity.internet is False
    assert keys(van)["connectivity.internet"] == "modem.no_internet"
    assert van.station.state.to_json()["connectivity"]["outcome"] == "unreachable"


async def test_a_stale_bearer_is_fixed_by_the_reconnect_step_alone(van: Rig) -> None:
    record_steps(van)
    await van.run(1)
    await van.sim("internet", "down")
    failing_from = van.clock.monotonic()
    await van.run(600, step=5)
    assert [a for _, a, _ in steps(van)] == ["reconnect", "recovered"]
    first = steps(van)[0][0]
    assert 300 <= first - failing_from <= 360  # recover_after, at the next probe
    assert van.station.state.connectivity.internet is True
    shown = [{n.key for n in e.state.notices} for e in van.events if isinstance(e, StationChanged) and e.state.notices]
    assert any("modem.recovery.done" in keys_shown for keys_shown in shown)
    assert "connectivity.recovery" not in keys(van)  # the "back" message went at the next good probe


async def test_a_hung_modem_gets_reconnect_then_reset_and_comes_back(van: Rig) -> None:
    record_steps(van)
    await van.run(1)
    await van.sim("modem", "hang")
    await van.run(900, step=5)
    actions = [(a, n) for _, a, n in steps(van)]
    assert actions == [("reconnect", 1), ("reset", 2), ("recovered", 2)]
    (t1, _, _), (t2, _, _), _ = steps(van)
    assert t2 - t1 >= 120  # the backoff: never two steps within backoff_initial
    assert van.station.state.connectivity.attempts == 0 and van.station.state.modem.connected


async def test_recovery_waits_grow_to_the_cap_and_never_loop_fast(van: Rig) -> None:
    record_steps(van)
    await van.run(1)
    van.devices.modem.reconnect = _refused  # type: ignore[method-assign]
    van.devices.modem.reset = _refused  # type: ignore[method-assign]
    await van.sim("internet", "down")
    await van.run(4 * 3600, step=10)
    times = [t for t, a, _ in steps(van) if a != "recovered"]
    gaps = [round(b - a) for a, b in itertools.pairwise(times)]
    assert gaps[:3] == [120, 240, 480]
    assert all(gap == 480 for gap in gaps[3:]) and len(times) < 35
    assert keys(van)["connectivity.recovery"] == "modem.recovery.failed"


async def _refused() -> None:
    raise RuntimeError("the modem refused")


async def test_no_recovery_step_in_a_dead_zone(van: Rig) -> None:
    record_steps(van)
    await van.sim("signal", "0")
    await van.run(3600, step=10)
    assert steps(van) == []
    assert keys(van)["connectivity.modem"] == "modem.no_network"
    assert van.station.state.connectivity.internet is False


async def test_sim_locked_missing_and_an_unplugged_modem_give_messages_that_clear(van: Rig) -> None:
    await van.run(1)
    await van.sim("sim", "locked")
    assert keys(van)["connectivity.modem"] == "modem.sim.locked"
    await van.sim("sim", "missing")
    assert keys(van)["connectivity.modem"] == "modem.sim.missing"
    await van.sim("sim", "ready")
    assert "connectivity.modem" not in keys(van)
    await van.sim("modem", "unplug")
    assert keys(van)["connectivity.modem"] == "modem.absent"
    await van.sim("modem", "plug")
    assert "connectivity.modem" not in keys(van)


async def test_weak_signal_warns_the_agent(van: Rig) -> None:
    await van.sim("signal", "12")
    assert keys(van)["connectivity.signal"] == "modem.signal.weak"
    await van.sim("signal", "60")
    assert "connectivity.signal" not in keys(van)


async def test_samples_are_kept_per_named_stop_and_the_atlas_ranks_them(van: Rig) -> None:
    assert van.station.store is not None
    van.station.set_stop("Mairie de Sarlat")
    await van.run(1800, step=10)
    await van.sim("signal", "15")
    van.station.set_stop("Place du marché")
    await van.run(1800, step=10)
    atlas = await van.station.store.atlas(0)
    assert [(s["stop"], s["rank"]) for s in atlas] == [("Mairie de Sarlat", 1), ("Place du marché", 2)]
    sarlat, market = atlas
    assert sarlat["median_signal"] == 70 and market["median_signal"] == 15
    assert sarlat["samples"] == 7  # one per sample_period (300 s): at 0, 5, … 30 min


async def test_the_atlas_ranks_reachability_first_then_median_signal_within_the_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "kioskd.sqlite")
    week = 7 * 24 * 3600

    async def add(stop: str, at: float, quality: int, internet: bool | None) -> None:
        await store.add_signal_sample(SignalSample(at, stop, quality, None, None, None, "lte", internet))

    now = 100 * week
    for i, q in enumerate((80, 85, 90)):  # strong signal, but the network drops half the time
        await add("Strong but broken", now - i, q, i % 2 == 0)
    for i, q in enumerate((30, 40, 35)):
        await add("Modest and reliable", now - i, q, True)
    for i, q in enumerate((60, 20, 50)):
        await add("Reliable, better", now - i, q, True)
    await add("Old stop", now - 10 * week, 99, True)
    ranked = await store.atlas(now - 6 * week)
    assert [s["stop"] for s in ranked] == ["Reliable, better", "Modest and reliable", "Strong but broken"]
    assert ranked[0]["median_signal"] == 50 and ranked[0]["reachability"] == 1.0
    assert ranked[2]["reachability"] == 0.667
    table = render_atlas(ranked, "fr")
    assert table.splitlines()[1].split()[:2] == ["1", "Reliable,"]
    assert render_atlas([], "en").startswith("No samples yet")


async def test_a_gps_fix_names_the_stop_from_the_profile(tmp_path: Path) -> None:
    stops = {"stops": [{"name": "Sarlat", "latitude": 44.889, "longitude": 1.216, "radius": 500}]}
    profile = sim_profile(station={"workspace": "directory"}, connectivity=stops)
    rig = await make_rig(tmp_path, profile)
    try:
        modem = rig.devices.modem
        assert isinstance(modem, SimModem)
        modem.set(latitude=44.8905, longitude=1.2165)
        assert rig.station.state.connectivity.stop == "Sarlat"
        assert rig.station.state.connectivity.stop_source == "gps"
        modem.set(latitude=45.2, longitude=1.5)
        assert rig.station.state.connectivity.stop is None
    finally:
        await rig.station.idle()
        await rig.station.close()
        for _, device in rig.devices.all():
            await device.close()


def test_stop_at_picks_the_nearest_stop_within_its_radius() -> None:
    stops = (
        AtlasStop(name="A", latitude=45.0, longitude=1.0, radius=1000),
        AtlasStop(name="B", latitude=45.005, longitude=1.0, radius=1000),
        AtlasStop(name="named only"),
    )
    assert round(distance_m(45.0, 1.0, 45.01, 1.0)) == 1112
    assert stop_at(stops, 45.004, 1.0) == "B"
    assert stop_at(stops, 45.001, 1.0) == "A"
    assert stop_at(stops, 46.0, 1.0) is None


async def test_the_agents_stop_is_left_when_the_engine_starts(van: Rig) -> None:
    van.station.set_stop("Mairie")
    await van.sim("ignition", "on")
    await van.run(10)
    assert van.station.state.connectivity.stop is None


@pytest.mark.parametrize(
    ("connectivity", "expected"),
    [
        ({"probe": "http"}, "probe_url"),
        ({"probe": "dns"}, "probe_host"),
        ({"probe": "http", "probe_url": "ftp://x"}, "probe_url"),
        ({"backoff_initial": 600, "backoff_max": 300}, "backoff_max"),
        ({"period": 1}, "period"),
    ],
)
def test_a_broken_connectivity_table_names_the_key(connectivity: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProfileError) as err:
        sim_profile(connectivity=connectivity)
    assert "connectivity" in str(err.value) and expected in str(err.value)
