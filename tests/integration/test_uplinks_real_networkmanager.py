"""kioskd's uplinks checked by Debian's real NetworkManager (issue 21): NetworkManager on a private system bus in a
network namespace of its own, managing two veth links (a town hall's cable and a second wired link, DHCP from
dnsmasq at their far ends), ModemManager mocked by python-dbusmock on the same bus. What kioskd writes is read back
by ``nmcli`` and from NetworkManager's keyfiles; what it asks (route metrics, reconnection) is seen in the
namespace's routes and NetworkManager's active connections."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kioskd.hal import Uplink
from kioskd.profile import SIM_PROFILE, parse_profile
from tests.conftest import Rig, make_rig
from tests.integration.modem_service import ModemManagerMock
from tests.integration.network_service import NetworkManagerDaemon
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
        yield mock
    finally:
        mock.close()


@pytest.fixture
def nm(bus: PrivateBus, mm: ModemManagerMock) -> Iterator[NetworkManagerDaemon]:
    daemon = NetworkManagerDaemon(bus, links=2)
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    started: list[Rig] = []
    yield started
    for rig in started:
        await rig.station.close()
        for _, device in rig.devices.all():
            await device.close()


def profile(bus: PrivateBus, nm: NetworkManagerDaemon, pin: Path) -> Any:
    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = "directory"
    data["devices"]["modem"] = {
        "driver": "networkmanager",
        "bus_address": bus.address,
        "modem_bus_address": bus.address,
        "uplinks": [
            {
                "name": "orange",
                "kind": "gsm",
                "apn": "orange",
                "interface": "cdc-wdm0",
                "pin_file": str(pin),
                "modem": "8",
                "sim_slot": 1,
                "operator_id": "20801",
            },
            {"name": "mairie", "kind": "ethernet", "interface": nm.links[0]},
            {"name": "cable", "kind": "ethernet", "interface": nm.links[1]},
        ],
        "reconnect": 0.2,
    }
    data["connectivity"] = {"probe": "modem", "period": 3600}  # the rig's clock does not move: no policy round
    return parse_profile(data, "test-profile.toml")


def fields(nm: NetworkManagerDaemon, connection: str, *names: str) -> list[str]:
    """``nmcli -s -g`` of ``connection``: the settings NetworkManager holds (secrets included)."""
    return nm.nmcli("-s", "-g", ",".join(names), "connection", "show", connection).strip().split("\n")


def active_paths(nm: NetworkManagerDaemon) -> dict[str, str]:
    """Active connection name → its D-Bus path, as NetworkManager says."""
    out = nm.nmcli("-t", "-f", "NAME,ACTIVE-PATH", "connection", "show", "--active")
    return dict(line.split(":", 1) for line in out.splitlines() if line)


async def test_the_real_networkmanager_holds_the_profiles_connections_routes_and_reconnections(
    tmp_path: Path, bus: PrivateBus, mm: ModemManagerMock, nm: NetworkManagerDaemon, rigs: list[Rig]
) -> None:
    pin = tmp_path / "orange.pin"
    pin.write_text("1234\n")
    rig = await make_rig(tmp_path, profile(bus, nm, pin))
    rigs.append(rig)
    ids = ["kioskd-orange", "kioskd-mairie", "kioskd-cable"]

    def listed() -> list[str]:
        names = nm.nmcli("-t", "-f", "NAME", "connection", "show").splitlines()
        return sorted(name for name in names if name.startswith("kioskd-"))  # NetworkManager has its "lo" too

    await wait_until(lambda: listed() == sorted(ids), "kioskd's three connections in NetworkManager")
    orange = ("connection.type", "gsm.apn", "gsm.pin", "connection.interface-name", "gsm.sim-operator-id")
    assert fields(nm, "kioskd-orange", *orange) == ["gsm", "orange", "1234", "cdc-wdm0", "20801"]
    metrics = [fields(nm, name, "ipv4.route-metric")[0] for name in ids]
    assert metrics == ["100", "200", "300"]  # the profile's order of preference
    keyfile = nm.directory / "connections" / "kioskd-orange.nmconnection"
    assert keyfile.stat().st_mode & 0o077 == 0  # NetworkManager keeps the PIN in a file only root reads
    assert "apn=orange" in keyfile.read_text()

    # NetworkManager brings the wired uplinks up itself (autoconnect, DHCP), kioskd follows them
    def uplink(name: str) -> Any:  # inactive until the backend published its uplinks
        return next((u for u in rig.station.state.modem.uplinks if u.name == name), Uplink(name, "ethernet"))

    await wait_until(lambda: uplink("mairie").active and uplink("cable").active, "both wired uplinks up", 60)
    assert (uplink("mairie").interface, uplink("cable").interface) == tuple(nm.links)
    assert rig.station.state.modem.uplink == "mairie"  # the best one carrying traffic (no modem on the bus's NM)
    await wait_until(lambda: nm.default_route() == nm.links[0], "the traffic through mairie's link")

    # the policy moves the traffic: new metrics, applied to the running device without a reconnection
    before = active_paths(nm)
    await rig.devices.modem.prefer("cable")  # type: ignore[attr-defined]
    assert [fields(nm, name, "ipv4.route-metric")[0] for name in ids] == ["200", "300", "100"]
    await wait_until(lambda: nm.default_route() == nm.links[1], "the traffic through cable's link")
    assert active_paths(nm) == before  # Reapply: the same activations, no link went down

    # recovery: down and up again through NetworkManager, which configures the link again (DHCP)
    await rig.devices.modem.reconnect_uplink("mairie")  # type: ignore[attr-defined]
    await wait_until(
        lambda: active_paths(nm).get("kioskd-mairie") not in (None, before["kioskd-mairie"]), "a new activation"
    )
    await wait_until(lambda: uplink("mairie").active, "mairie up again", 60)
    assert active_paths(nm)["kioskd-cable"] == before["kioskd-cable"]
    assert mm.calls("Connect", "Disconnect") == []  # no bearer touched behind NetworkManager's back

    # a restarted kioskd updates its connections, it does not add them again
    await rig.station.close()
    for _, device in rig.devices.all():
        await device.close()
    rigs.remove(rig)
    pin.write_text("4321\n")
    (tmp_path / "again").mkdir()
    again = await make_rig(tmp_path / "again", profile(bus, nm, pin))
    rigs.append(again)
    await wait_until(lambda: fields(nm, "kioskd-orange", "gsm.pin") == ["4321"], "the new PIN")
    assert listed() == sorted(ids)
