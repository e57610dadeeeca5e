"""UPower on a PC whose only power device is a USB UPS (no line-power device, as UPower shows a mini-PC on a UPS),
on a private D-Bus with python-dbusmock's upower template, feeding the power policy: the UPS's state is the shore,
so the policy runs (warns, shuts down) instead of waiting for a shore that never comes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dbus
import pytest

from drivers.power.upower import UPowerPower
from kioskd.clock import RealClock
from kioskd.hal import Event
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from tests.integration.power_services import PrivateBus, context, private_bus, wait_until
from tests.integration.test_power_upower import UPowerMock

pytestmark = pytest.mark.integration

CHARGING, DISCHARGING, FULLY_CHARGED = 1, 2, 4


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    with private_bus() as running:
        yield running


class Wired:
    def __init__(self) -> None:
        self.decisions: list[PowerDecision] = []
        config = PowerPolicyConfig(shore_debounce=0, warn_soc=30, critical_soc=10)
        self.policy = PowerPolicy(config, 1800, RealClock(), self.decisions.append)

    def emit(self, event: Event) -> None:
        if isinstance(event, self.policy.events):
            self.policy.on_event(event)


@pytest.fixture
async def ups_only(tmp_path: Path, bus: PrivateBus) -> AsyncIterator[tuple[UPowerMock, str, UPowerPower, Wired]]:
    mock = UPowerMock(bus)
    path = mock.add_battery(100, 3600)
    mock.set(path, Type=dbus.UInt32(3), State=dbus.UInt32(FULLY_CHARGED), Model="Eaton 3S")
    wired = Wired()
    power = UPowerPower(context({"bus_address": bus.address, "reconnect": 0.2}, wired.emit, tmp_path, "upower"))
    await power.start()
    yield mock, path, power, wired
    await power.close()


async def test_a_fully_charged_ups_is_shore_and_discharging_is_not(
    ups_only: tuple[UPowerMock, str, UPowerPower, Wired],
) -> None:
    mock, path, power, wired = ups_only
    await wait_until(lambda: power.state.available and power.state.detail == "Eaton 3S", "the UPS")
    assert power.state.shore is True and wired.policy.shore is True
    mock.set(path, State=dbus.UInt32(DISCHARGING), Percentage=dbus.Double(90.0))
    await wait_until(lambda: wired.policy.shore is False, "on battery")
    assert [d.key for d in wired.decisions] == ["power.shore.disconnected"]
    mock.set(path, State=dbus.UInt32(CHARGING))
    await wait_until(lambda: wired.policy.shore is True, "back on shore")


async def test_a_ups_running_down_shuts_the_station_down(ups_only: tuple[UPowerMock, str, UPowerPower, Wired]) -> None:
    mock, path, _power, wired = ups_only
    await wait_until(lambda: wired.policy.shore is True, "the UPS on shore")
    mock.set(path, State=dbus.UInt32(DISCHARGING), Percentage=dbus.Double(25.0))
    await wait_until(lambda: wired.policy.level == "warn", "the warning")
    mock.set(path, Percentage=dbus.Double(8.0))
    await wait_until(lambda: wired.policy.level == "critical", "critical")
    assert [d.action for d in wired.decisions][-1] == "shutdown"
