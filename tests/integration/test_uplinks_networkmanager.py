"""NetworkManager owns the van's uplinks (issue 21): the networkmanager backend against python-dbusmock's
NetworkManager and ModemManager templates on a private bus, with real veth wires into network namespaces so a probe
really fails on one interface only; a real station on a manual clock."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kioskd.cli.render import render_atlas, render_status
from kioskd.policies.connectivity import RecoveryStep, UplinkSwitched, VisioChecked
from kioskd.profile import SIM_PROFILE, parse_profile
from tests.conftest import Rig, make_rig
from tests.integration.modem_service import DUAL_SIM_IMEI, ModemManagerMock
from tests.integration.network_service import (
    PROBE_ADDRESS,
    PROBE_PORT,
    VISIO_BYTES,
    NetworkManagerMock,
    Wire,
)
from tests.integration.power_services import PrivateBus, private_bus, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    with private_bus() as running:
        yield running


@pytest.fixture
def mm(bus: PrivateBus) -> Iterator[ModemManagerMock]:
    mock = ModemManagerMock(bus)
    try:
        mock.add_modem(operator="Orange F")
        mock.add_modem(number=9, operator="SFR", quality=55, figures=(-101.0, -12.0, 4.0))
        yield mock
    finally:
        mock.close()


@pytest.fixture
def nm(bus: PrivateBus) -> Iterator[NetworkManagerMock]:
    mock = NetworkManagerMock(bus)
    try:
        yield mock
    finally:
        mock.close()


@pytest.fixture
def wires() -> Iterator[tuple[Wire, Wire]]:
    a = Wire("a", 1)
    try:
        b = Wire("b", 2)
    except BaseException:
        a.close()
        raise
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    started: list[Rig] = []
    yield started
    for rig in started:
        await rig.station.close()
        for _, device in rig.devices.all():
            await device.close()


ORANGE = {"name": "orange", "kind": "gsm", "apn": "orange", "interface": "cdc-wdm0", "modem": "8"}
SFR = {"name": "sfr", "kind": "gsm", "apn": "sl2sfr", "interface": "cdc-wdm1", "modem": "9"}


def profile(bus: PrivateBus, uplinks: list[dict[str, Any]], **connectivity: Any) -> Any:
    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = "directory"
    data["devices"]["modem"] = {
        "driver": "networkmanager",
        "bus_address": bus.address,
        "modem_bus_address": bus.address,
        "uplinks": uplinks,
        "reconnect": 0.2,
    }
    data["connectivity"] = {
        "probe": "http",
        "probe_url": f"http://{PROBE_ADDRESS}:{PROBE_PORT}/",
        "probe_status": 200,
        "probe_timeout": 2,
        "period": 60,
        "sample_period": 60,
        "stops": [{"name": "Domme"}],
        **connectivity,
    }
    return parse_profile(data, "test-profile.toml")


async def start(tmp_path: Path, rigs: list[Rig], nm: NetworkManagerMock, wires: tuple[Wire, ...], p: Any) -> Rig:
    """A station whose backend wrote its connections into NetworkManager, which then brought them up (as its
    autoconnect does) on the devices whose IP interfaces are the wires."""
    devices = [nm.add_device(f"wwan{i}", f"cdc-wdm{i}", wire.interface) for i, wire in enumerate(wires)]
    rig = await make_rig(tmp_path, p)
    rigs.append(rig)
    names = [u.name for u in rig.devices.modem.uplinks]  # type: ignore[attr-defined]
    await wait_until(lambda: len(nm.connections()) == len(names), "kioskd's connections in NetworkManager")
    for name, device in zip(names, devices, strict=False):
        nm.activate(f"kioskd-{name}", device)
    await wait_until(
        lambda: all(u.active and u.operator for u in rig.station.state.modem.uplinks), "the uplinks up and read"
    )
    rig.station.set_stop("Domme")
    nm.control.ClearCalls()
    return rig


async def tick(rig: Rig, seconds: float) -> None:
    await rig.clock.advance(seconds)
    await rig.station.idle()


def uplink_rows(rig: Rig) -> list[str]:
    """The uplinks' lines of ``kioskctl status`` in French, without their label."""
    lines = render_status(rig.station.state.to_json(), "fr").splitlines()
    return [line.split(None, 1)[1] for line in lines if line.startswith("  lien ")]


def metric(settings: Any) -> int:
    return int(settings["ipv4"]["route-metric"])


async def test_connections_come_from_the_profile_with_apn_pin_and_metrics_by_preference(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    pin = tmp_path / "orange.pin"
    pin.write_text("1234\n")
    await start(tmp_path, rigs, nm, wires, profile(bus, [{**ORANGE, "pin_file": str(pin)}, SFR]))
    orange, sfr = nm.settings_of("kioskd-orange"), nm.settings_of("kioskd-sfr")
    assert (str(orange["connection"]["type"]), str(orange["gsm"]["apn"]), str(orange["gsm"]["pin"])) == (
        "gsm", "orange", "1234",
    )  # fmt: skip
    assert str(orange["connection"]["interface-name"]) == "cdc-wdm0"
    assert (metric(orange), metric(sfr)) == (100, 200)  # the first uplink of the profile is preferred
    assert "pin" not in sfr["gsm"]


async def test_a_failing_preferred_uplink_moves_traffic_to_the_other_and_back_after_the_hold_time(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    rig = await start(tmp_path, rigs, nm, wires, profile(bus, [ORANGE, SFR], switch_back_after=300))
    await tick(rig, 0)
    assert rig.station.state.connectivity.uplink == "orange"
    assert nm.updates("kioskd-sfr") == []  # already in the profile's order: nothing to move

    wires[0].cut()  # Orange's network dies; SFR's works
    await tick(rig, 60)
    c = rig.station.state.connectivity
    assert (c.uplink, c.internet) == ("sfr", True), c
    assert [u.outcome for u in c.uplinks] == ["unreachable", "ok"]
    assert metric(nm.updates("kioskd-sfr")[-1]) == 100 and metric(nm.updates("kioskd-orange")[-1]) == 200
    assert nm.reapplies("/org/freedesktop/NetworkManager/Devices/wwan1") == 1  # applied without a reconnection
    assert {n.topic: n.key for n in rig.station.state.notices}["connectivity.uplink"] == "uplink.backup"
    status = render_status(rig.station.state.to_json(), "en")
    assert "link sfr [orange ✗] [sfr ✓]" in status
    assert uplink_rows(rig) == [  # French first: one line per uplink under the network's
        f"orange · Orange F · {wires[0].interface} · LTE 70 % · ✗ ne répond pas",
        f"sfr · SFR · {wires[1].interface} · LTE 55 % · ✓ répond · en service",
    ]
    assert rig.station.state.modem.uplink == "sfr" and rig.station.state.modem.operator == "SFR"

    wires[0].mend()
    for _ in range(5):  # back at 120 s: it must hold 300 s before the traffic returns
        await tick(rig, 60)
        assert rig.station.state.connectivity.uplink == "sfr"
    await tick(rig, 60)  # 420 s: held 300 s
    assert rig.station.state.connectivity.uplink == "orange", rig.station.state.connectivity.uplinks
    assert metric(nm.updates("kioskd-orange")[-1]) == 100
    switches = [(e.uplink, e.reason) for e in rig.events if isinstance(e, UplinkSwitched)]
    assert switches == [("orange", "start"), ("sfr", "failed"), ("orange", "preferred")]
    assert "connectivity.uplink" not in {n.topic for n in rig.station.state.notices}


async def test_the_atlas_says_which_operator_works_at_the_stop(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    rig = await start(tmp_path, rigs, nm, wires, profile(bus, [ORANGE, SFR]))
    wires[0].cut()
    for seconds in (0, 60, 60):
        await tick(rig, seconds)
    [domme] = await rig.station.store.atlas(0)  # type: ignore[union-attr]
    by_operator = {u["operator"]: u for u in domme["uplinks"]}
    assert (by_operator["SFR"]["reachability"], by_operator["Orange F"]["reachability"]) == (1.0, 0.0)
    assert by_operator["SFR"]["samples"] == 3
    text = render_atlas([domme], "en")
    assert "SFR works (100%) · Orange F does not work (0%)" in text


async def test_recovery_goes_through_networkmanager_then_resets_the_modem_never_simple_connect(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    rig = await start(tmp_path, rigs, nm, wires[:1], profile(bus, [ORANGE], recover_after=300, backoff_initial=120))
    mm.modem.ClearCalls()
    wires[0].cut()  # registered, NetworkManager says connected, but nothing gets through
    seen: list[tuple[str, float]] = []
    for minute in range(8):
        await tick(rig, 60 if minute else 0)
        new = [name for name, _ in nm.calls("DeactivateConnection", "ActivateConnection")][len(seen) :]
        new_mm = [n for n in mm.calls("Reset")][len([s for s in seen if s[0] == "Reset"]) :]
        seen += [(name, rig.clock.monotonic()) for name in new + new_mm]
    assert seen == [("DeactivateConnection", 300), ("ActivateConnection", 300), ("Reset", 420)]
    [(_, activate)] = nm.calls("ActivateConnection")
    assert str(activate[0]) == nm.connections()["kioskd-orange"]
    assert mm.calls("Connect", "Disconnect") == []  # kioskd never touches the bearer itself
    steps = [(e.action, e.attempt) for e in rig.events if isinstance(e, RecoveryStep)]
    assert steps == [("reconnect", 1), ("reset", 2)]

    wires[0].mend()
    await tick(rig, 60)
    assert rig.station.state.connectivity.internet is True
    assert [e.action for e in rig.events if isinstance(e, RecoveryStep)][-1] == "recovered"


async def test_the_video_call_check_runs_per_uplink_rate_limited_and_never_during_a_session(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    url = f"http://{PROBE_ADDRESS}:{PROBE_PORT}/"
    p = profile(bus, [ORANGE, SFR], visio_url=url, visio_bytes=VISIO_BYTES, visio_period=1800, visio_min_kbps=1000,
                stops=[{"name": "Domme"}, {"name": "Sarlat"}])  # fmt: skip
    rig = await start(tmp_path, rigs, nm, wires, p)
    wires[0].slow(250)  # Orange's cell is saturated: the probe passes, a call would not hold

    def checks() -> list[tuple[str, bool]]:
        return [(e.check.uplink, e.check.possible) for e in rig.events if isinstance(e, VisioChecked)]

    await tick(rig, 0)
    assert checks() == [("orange", False)]  # one uplink a round, the preferred first
    await tick(rig, 60)
    assert checks() == [("orange", False), ("sfr", True)]
    c = rig.station.state.connectivity
    assert c.visio is False  # through Orange, in use, no call
    assert {n.topic: n.key for n in rig.station.state.notices}["connectivity.visio"] == "visio.not_possible"
    sfr = next(v for v in c.visio_checks if v.uplink == "sfr")
    assert sfr.down_kbps is not None and sfr.down_kbps > 1000 and sfr.rtt is not None and sfr.rtt < 0.25
    for _ in range(10):  # rate-limited: neither again before visio_period
        await tick(rig, 60)
    assert len(checks()) == 2

    [domme] = await rig.station.store.atlas(0)  # type: ignore[union-attr]
    by_operator = {u["operator"]: u for u in domme["uplinks"]}
    assert (by_operator["SFR"]["visio"], by_operator["Orange F"]["visio"], domme["visio"]) == (1.0, 0.0, 1.0)
    assert "SFR works (100%), video call 100%" in render_atlas([domme], "en")

    await rig.station.start()
    await rig.drive(rig.station.next_citizen())  # a citizen is in session (maybe on a call with an adviser)
    assert rig.station.state.session is not None
    rig.station.set_stop("Sarlat")  # a new stop: its checks are due at once …
    for _ in range(3):
        await tick(rig, 60)
    assert len(checks()) == 2  # … but not while the session lasts


@pytest.fixture
def dual(bus: PrivateBus) -> Iterator[ModemManagerMock]:
    """One modem with two SIMs: Orange in slot 1 (in use), SFR in slot 2."""
    mock = ModemManagerMock(bus)
    try:
        mock.add_modem(operator="Orange F", sim_slots=("Orange F", "SFR"))
        yield mock
    finally:
        mock.close()


# one modem named by its IMEI (its path changes when ModemManager probes it again after a slot switch)
ORANGE_SLOT = {**ORANGE, "modem": DUAL_SIM_IMEI, "sim_slot": 1, "operator_id": "20801"}
SFR_SLOT = {**SFR, "interface": "cdc-wdm0", "modem": DUAL_SIM_IMEI, "sim_slot": 2, "operator_id": "20810"}


async def test_a_dual_sim_modem_takes_the_sim_the_stop_names_and_the_other_when_it_fails(
    tmp_path: Path, bus: PrivateBus, dual: ModemManagerMock, nm: NetworkManagerMock, wires: tuple[Wire, Wire],
    rigs: list[Rig],
) -> None:  # fmt: skip
    stops = [{"name": "Sarlat"}, {"name": "Domme", "uplink": "sfr"}]
    p = profile(bus, [ORANGE_SLOT, SFR_SLOT], stops=stops, switch_back_after=180, recover_after=3600)
    device = nm.add_device("wwan0", "cdc-wdm0", wires[0].interface)  # one modem, one interface, either SIM
    rig = await make_rig(tmp_path, p)
    rigs.append(rig)
    await wait_until(lambda: len(nm.connections()) == 2, "kioskd's connections in NetworkManager")
    assert [str(nm.settings_of(f"kioskd-{n}")["gsm"]["sim-operator-id"]) for n in ("orange", "sfr")] == [
        "20801", "20810",
    ]  # fmt: skip
    active = nm.activate("kioskd-orange", device)  # NetworkManager brings up the connection of the SIM in use

    def uplinks() -> Any:
        return rig.station.state.modem.uplinks

    await wait_until(lambda: uplinks()[0].active and uplinks()[0].operator == "Orange F", "Orange up")
    assert (uplinks()[1].standby, uplinks()[1].operator) == (True, None)  # SFR's SIM waits in its slot
    rig.station.set_stop("Sarlat")
    await tick(rig, 0)
    c = rig.station.state.connectivity
    assert (c.uplink, [u.outcome for u in c.uplinks]) == ("orange", ["ok", ""])
    assert dual.calls("SetPrimarySimSlot") == []

    rig.station.set_stop("Domme")  # the profile says SFR works here
    await tick(rig, 60)
    slots = [[int(a) for a in args] for _, args in dual.modem.GetMethodCalls("SetPrimarySimSlot")]
    assert slots == [[2]]
    nm.manager.DeactivateConnection(active)  # the modem on the other SIM: NetworkManager's other connection
    active = nm.activate("kioskd-sfr", device)
    await wait_until(lambda: uplinks()[1].active and uplinks()[1].operator == "SFR", "SFR up")
    assert uplinks()[0].standby
    await tick(rig, 60)
    c = rig.station.state.connectivity
    assert (c.uplink, [u.outcome for u in c.uplinks]) == ("sfr", ["", "ok"])
    assert "link sfr [orange -] [sfr ✓]" in render_status(rig.station.state.to_json(), "en")
    rows = uplink_rows(rig)
    assert rows == [
        "orange · - · - · - · - SIM 1 en attente",
        f"sfr · SFR · {wires[0].interface} · LTE 70 % · ✓ répond · en service",
    ]
    assert "connectivity.uplink" not in {n.topic for n in rig.station.state.notices}  # SFR is Domme's own link

    wires[0].cut()  # SFR dies too: Orange's SIM is tried, not before switch_back_after since the last switch
    await tick(rig, 60)
    assert rig.station.state.connectivity.uplink == "sfr"
    await tick(rig, 60)
    slots = [[int(a) for a in args] for _, args in dual.modem.GetMethodCalls("SetPrimarySimSlot")]
    assert slots == [[2], [1]]
    switches = [(e.uplink, e.reason) for e in rig.events if isinstance(e, UplinkSwitched)]
    assert switches == [("orange", "start"), ("sfr", "stop"), ("orange", "failed")]
    assert dual.calls("Reset") == []  # a SIM waiting in its slot is not a modem to recover
