"""The ModemManager backend and the connectivity policy on a private D-Bus with python-dbusmock's modemmanager
template (completed with RegistrationState, bearers, Reset and Signal), driving a real station on a manual clock,
with a 127.0.0.1 HTTP server as the reachability probe's target."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dbus
import pytest

from kioskd.hal import ModemChanged
from kioskd.policies.connectivity import RecoveryStep
from kioskd.profile import SIM_PROFILE, parse_profile
from tests.conftest import Rig, make_rig
from tests.integration.modem_service import (
    LOCATION,
    M3GPP,
    MODEM,
    REGISTERED,
    SIGNAL,
    ModemManagerMock,
    ProbeTarget,
    lte,
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
        yield mock
    finally:
        mock.close()


@pytest.fixture
def target() -> Iterator[ProbeTarget]:
    server = ProbeTarget()
    server.healthy()
    try:
        yield server
    finally:
        server.close()


def mm_profile(bus: PrivateBus, target: ProbeTarget, modem: dict[str, Any] | None = None, **connectivity: Any) -> Any:
    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = "directory"
    data["devices"]["modem"] = {
        "driver": "modemmanager",
        "bus_address": bus.address,
        "signal_rate": 7,
        "reconnect": 0.2,
        **(modem or {}),
    }
    data["connectivity"] = {
        "probe": "http",
        "probe_url": target.url,
        "probe_timeout": 2,
        "period": 60,
        "recover_after": 300,
        "backoff_initial": 120,
        "backoff_max": 480,
        **connectivity,
    }
    return parse_profile(data, "test-profile.toml")


@pytest.fixture
async def station_on(tmp_path: Path) -> AsyncIterator[list[Rig]]:
    rigs: list[Rig] = []
    yield rigs
    for rig in rigs:
        await rig.station.close()
        for _, device in rig.devices.all():
            await device.close()


async def start(tmp_path: Path, rigs: list[Rig], profile: Any) -> Rig:
    rig = await make_rig(tmp_path, profile)
    rigs.append(rig)
    return rig


async def tick(rig: Rig, seconds: float) -> None:
    """Simulated time passes; the probe and any recovery step it starts (real HTTP, real D-Bus) run to their end."""
    await rig.clock.advance(seconds)
    await rig.station.idle()


def notice_keys(rig: Rig) -> dict[str, str]:
    return {n.topic: n.key for n in rig.station.state.notices}


def modem_events(rig: Rig, mark: int) -> list[ModemChanged]:
    return [e for e in rig.events[mark:] if isinstance(e, ModemChanged)]


async def test_state_signal_and_operator_changes_reach_the_station_within_one_event(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")
    m = rig.station.state.modem
    assert (m.registration, m.technology, m.signal, m.operator, m.connected) == ("home", "lte", 70, "TheOperator", True)
    assert (m.rsrp, m.rsrq, m.sinr, m.sim) == (-95.0, -11.0, 8.0, "ready")

    changes: list[tuple[str, dict[str, Any], str, Any]] = [
        (MODEM, {"SignalQuality": dbus.Struct((dbus.UInt32(23), True), signature="ub")}, "signal", 23),
        (M3GPP, {"OperatorName": "Bouygues Telecom"}, "operator", "Bouygues Telecom"),
        (M3GPP, {"RegistrationState": dbus.UInt32(5)}, "registration", "roaming"),
        (MODEM, {"AccessTechnologies": dbus.UInt32(1 << 15)}, "technology", "5gnr"),
        (MODEM, {"State": dbus.Int32(REGISTERED)}, "connected", False),
        (SIGNAL, {"Nr5g": lte(-101.5, -12.0, 3.5)}, "rsrp", -101.5),
    ]
    for interface, properties, field, value in changes:
        mark = len(rig.events)
        mm.set(interface, **properties)
        await wait_until(lambda m=mark: bool(modem_events(rig, m)), f"the {field} change")
        first = modem_events(rig, mark)[0]
        assert getattr(first.state, field) == value, field  # the first event already carries it
        assert getattr(rig.station.state.modem, field) == value, field
    assert len(modem_events(rig, 0)) >= len(changes)


async def test_signal_setup_asks_for_the_profile_rate(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: bool(mm.modem.GetMethodCalls("Setup")), "Signal.Setup")
    [(_, args)] = mm.modem.GetMethodCalls("Setup")
    assert [int(a) for a in args] == [7]


async def test_a_modem_removed_and_readded_comes_back_without_restarting(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")

    mm.remove_modem()  # a USB reset: ModemManager drops the modem
    await wait_until(lambda: not rig.station.state.modem.present, "the modem to go")
    assert notice_keys(rig)["connectivity.modem"] == "modem.absent"

    mm.add_modem()
    mm.set(MODEM, SignalQuality=dbus.Struct((dbus.UInt32(41), True), signature="ub"))
    await wait_until(lambda: rig.station.state.modem.signal == 41, "the modem to come back")
    assert rig.station.state.modem.present and rig.station.state.modem.registration == "home"
    assert "connectivity.modem" not in notice_keys(rig)
    await wait_until(lambda: bool(mm.modem.GetMethodCalls("Setup")), "Signal.Setup on the new modem")


async def test_sim_locked_and_no_sim_give_clear_agent_messages(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")

    mm.set(MODEM, State=dbus.Int32(2), UnlockRequired=dbus.UInt32(2))  # locked, waiting for the PIN
    await wait_until(lambda: rig.station.state.modem.sim == "locked", "the SIM lock")
    assert notice_keys(rig)["connectivity.modem"] == "modem.sim.locked"
    texts = {n.to_json()["fr"] for n in rig.station.state.notices}
    assert any("PIN" in text for text in texts)

    mm.set(MODEM, State=dbus.Int32(-1), StateFailedReason=dbus.UInt32(2))
    mm.set_path(MODEM, "Sim", "/")
    await wait_until(lambda: rig.station.state.modem.sim == "missing", "the SIM to be missing")
    assert notice_keys(rig)["connectivity.modem"] == "modem.sim.missing"


async def test_probe_follows_the_server_healthy_wrong_status_unreachable_and_shows_connected_but_failing(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    rig = await start(tmp_path, station_on, mm_profile(bus, target, recover_after=3600))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")
    await tick(rig, 0)
    c = rig.station.state.connectivity
    assert (c.internet, c.outcome) == (True, "ok")
    assert target.hits == 1

    target.wrong_status()  # a captive portal: 200 instead of 204
    await tick(rig, 60)
    c = rig.station.state.connectivity
    assert (c.internet, c.outcome) == (False, "wrong-status")
    assert rig.station.state.modem.connected  # the modem says connected …
    assert notice_keys(rig)["connectivity.internet"] == "modem.no_internet"  # … and the agent sees it is not enough

    target.unreachable()
    await tick(rig, 60)
    assert rig.station.state.connectivity.outcome == "unreachable"

    target.healthy()
    await tick(rig, 60)
    c = rig.station.state.connectivity
    assert (c.internet, c.outcome) == (True, "ok")
    assert "connectivity.internet" not in notice_keys(rig)


async def test_recovery_without_networkmanager_only_resets_with_growing_waits_and_never_connects_a_bearer(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem(state=REGISTERED)  # registered, no bearer
    target.unreachable()
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.registration == "home", "the modem")
    mm.modem.ClearCalls()

    seen: list[tuple[str, float]] = []
    for minute in range(31):  # the first probe at 0, then one a minute for 30 simulated minutes
        await tick(rig, 60 if minute else 0)
        new = mm.calls("Disconnect", "Connect", "Reset")[len(seen) :]
        seen += [(name, rig.clock.monotonic()) for name in new]
    # NetworkManager owns the bearer (issue 21): the ModemManager backend alone refuses to reconnect, and the
    # policy resets instead, never calling Simple.Connect/Disconnect
    assert seen == [
        ("Reset", 300),  # after recover_after (5 min) without data
        ("Reset", 420),  # + 120 s
        ("Reset", 660),  # + 240 s
        ("Reset", 1140),  # + 480 s: the cap
        ("Reset", 1620),  # + 480 s again, never faster
    ]
    steps = [e for e in rig.events if isinstance(e, RecoveryStep)]
    assert [(s.action, s.attempt, s.next_in) for s in steps] == [
        ("reconnect", 1, 120),  # asked, refused by the backend, replaced by the reset
        ("reset", 2, 240),
        ("reset", 3, 480),
        ("reset", 4, 480),
        ("reset", 5, 480),
    ]
    assert notice_keys(rig)["connectivity.recovery"] == "modem.recovery.reset"

    target.healthy()
    await tick(rig, 60)
    assert [e.action for e in rig.events if isinstance(e, RecoveryStep)][-1] == "recovered"
    assert notice_keys(rig)["connectivity.recovery"] == "modem.recovery.done"
    calls = len(mm.calls())
    for _ in range(20):
        await tick(rig, 60)
    assert len(mm.calls()) == calls  # the link works: no more steps
    assert rig.station.state.connectivity.attempts == 0


async def test_modemmanager_restarting_is_followed_without_restarting_kioskd(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")

    mm.close()  # ModemManager stops (an upgrade, a crash): its name leaves the bus
    await wait_until(lambda: not rig.station.state.modem.present, "the modem to go with ModemManager")
    assert notice_keys(rig)["connectivity.modem"] == "modem.absent"

    again = ModemManagerMock(bus)
    try:
        again.add_modem()
        await wait_until(lambda: rig.station.state.modem.present, "the modem of the new ModemManager")
        assert "connectivity.modem" not in notice_keys(rig)
    finally:
        again.close()


async def test_the_modems_gps_names_the_stop_of_the_profile(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    mm.add_gps(44.0, 1.0)  # somewhere else
    stops = [{"name": "Sarlat", "latitude": 44.889, "longitude": 1.2166, "radius": 300}]
    rig = await start(tmp_path, station_on, mm_profile(bus, target, modem={"location": True}, stops=stops))
    await wait_until(lambda: rig.station.state.modem.latitude == 44.0, "the first fix")
    await wait_until(lambda: bool(mm.modem.GetMethodCalls("Setup")), "Location.Setup")
    assert rig.station.state.connectivity.stop is None

    mm.set(LOCATION, Location=mm.fix(44.8893, 1.2170))
    await wait_until(lambda: rig.station.state.connectivity.stop == "Sarlat", "the stop from the GPS")
    assert rig.station.state.connectivity.stop_source == "gps"
    assert rig.station.state.modem.latitude == 44.8893  # not rounded off the stop
    setups = [[int(a) for a in args] for _, args in mm.modem.GetMethodCalls("Setup")]
    assert [2, 1] in setups  # Location.Setup(GPS raw, with signals)


async def test_signal_is_set_up_when_its_interface_appears_after_the_sim_unlock(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem(signal_interface=False)  # a locked SIM: ModemManager exports no Signal interface yet
    rig = await start(tmp_path, station_on, mm_profile(bus, target))
    await wait_until(lambda: rig.station.state.modem.present, "the modem")
    assert mm.modem.GetMethodCalls("Setup") == []
    props = {"Rate": dbus.UInt32(0), "Lte": lte(-90.0, -9.0, 12.0), "Nr5g": dbus.Dictionary({}, signature="sv")}
    for name, value in props.items():
        mm.modem.AddProperty(SIGNAL, name, value)
    mm.modem.AddMethod(SIGNAL, "Setup", "u", "", "")
    mm.manager.EmitSignal(
        "org.freedesktop.DBus.ObjectManager",
        "InterfacesAdded",
        "oa{sa{sv}}",
        [dbus.ObjectPath(mm.path), {SIGNAL: dbus.Dictionary(props, signature="sv")}],
        dbus_interface="org.freedesktop.DBus.Mock",
    )  # fmt: skip  (the SIM unlocked: the interface arrives)
    await wait_until(lambda: bool(mm.modem.GetMethodCalls("Setup")), "Signal.Setup after the unlock")
    assert [int(args[0]) for _, args in mm.modem.GetMethodCalls("Setup")] == [7]
    await wait_until(lambda: rig.station.state.modem.rsrp == -90.0, "the LTE figures")


async def test_location_setup_adds_gps_and_cell_to_the_sources_already_on_and_the_cell_names_the_stop(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, target: ProbeTarget, station_on: list[Rig]
) -> None:
    mm.add_modem()
    modem = mm.modem
    modem.AddProperty(LOCATION, "Capabilities", dbus.UInt32(1 | 2 | 4))  # 3GPP, GPS raw, GPS NMEA
    modem.AddProperty(LOCATION, "Enabled", dbus.UInt32(4))  # someone turned NMEA on: it must stay on
    cell = dbus.Dictionary({dbus.UInt32(1): dbus.String("208,01,0000,3C4D5E,1A2B", variant_level=1)}, signature="uv")
    modem.AddProperty(LOCATION, "Location", cell)
    modem.AddMethod(LOCATION, "Setup", "ub", "", f"self.UpdateProperties('{LOCATION}', {{'Enabled': args[0]}})")
    mm.manager.EmitSignal(
        "org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}",
        [dbus.ObjectPath(mm.path), {LOCATION: dbus.Dictionary({"Enabled": dbus.UInt32(4)}, signature="sv")}],
        dbus_interface="org.freedesktop.DBus.Mock",
    )  # fmt: skip
    stops = [{"name": "Domme", "cells": ["20801-1A2B-3C4D5E"]}]
    rig = await start(tmp_path, station_on, mm_profile(bus, target, modem={"location": True}, stops=stops))

    # Signal.Setup (one argument) is a "Setup" call of the same mock too: wait for Location's (two)
    def location_setups() -> list[list[int]]:
        return [[int(a) for a in args] for _, args in mm.modem.GetMethodCalls("Setup") if len(args) == 2]

    await wait_until(lambda: bool(location_setups()), "Location.Setup")
    setups = location_setups()
    assert setups[0] == [1 | 2 | 4, 1]  # GPS raw and 3GPP added to NMEA, with signals
    await wait_until(lambda: rig.station.state.modem.cell == "20801-1A2B-3C4D5E", "the serving cell")
    c = rig.station.state.connectivity
    assert (c.stop, c.stop_source) == ("Domme", "cell")  # no GPS fix: the cell names the stop
