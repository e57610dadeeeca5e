"""The UPower backend on a private D-Bus with python-dbusmock's upower template: properties, signals, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dbus
import dbusmock
import pytest

from drivers.power.upower import UPowerPower
from kioskd.hal import DeviceFault, ShoreChanged
from tests.integration.power_services import PrivateBus, Recorder, context, private_bus, wait_until

pytestmark = pytest.mark.integration

UPOWER = "org.freedesktop.UPower"
DEVICE = "org.freedesktop.UPower.Device"


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    with private_bus() as running:
        yield running


class UPowerMock:
    """The upower template on the private bus, driven through dbusmock's own interface."""

    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.process = bus.spawn_mock("upower", UPOWER, {"OnBattery": False})
        self.connection = bus.connection()
        self.control = dbus.Interface(
            self.connection.get_object(UPOWER, "/org/freedesktop/UPower"), dbusmock.MOCK_IFACE
        )

    def add_ac(self, name: str = "line_power_AC", typed: bool = True) -> str:
        path = str(self.control.AddAC(name, "Shore"))  # str(): dbus-fast and comparisons want plain str
        if typed:  # the template's AddAC has no Type; real UPower always sends 1 (line power)
            self.connection.get_object(UPOWER, path).AddProperty(
                DEVICE, "Type", dbus.UInt32(1), dbus_interface=dbusmock.MOCK_IFACE
            )
        return path

    def add_battery(self, percentage: float, seconds: int) -> str:
        path = str(self.control.AddDischargingBattery("battery_BAT0", "Leisure battery", percentage, seconds))
        self.connection.get_object(UPOWER, path).AddProperty(
            DEVICE, "WarningLevel", dbus.UInt32(1), dbus_interface=dbusmock.MOCK_IFACE
        )  # the template leaves it out; real UPower sends 1 (none)
        return path

    def set(self, path: str, **properties: Any) -> None:
        self.control.SetDeviceProperties(path, properties)

    def stop(self) -> None:
        self.connection.close()
        self.bus.stop_mock(self.process)


@pytest.fixture
async def backend(tmp_path: Path, bus: PrivateBus) -> AsyncIterator[tuple[list[UPowerPower], Recorder]]:
    events = Recorder()
    started: list[UPowerPower] = []
    yield started, events
    for power in started:
        await power.close()


async def start(tmp_path: Path, bus: PrivateBus, events: Recorder, started: list[UPowerPower]) -> UPowerPower:
    power = UPowerPower(context({"bus_address": bus.address, "reconnect": 0.2}, events, tmp_path, "upower"))
    await power.start()
    started.append(power)
    return power


async def test_line_power_is_shore_and_the_battery_gives_charge_and_time_to_go(
    tmp_path: Path, bus: PrivateBus, backend: tuple[list[UPowerPower], Recorder]
) -> None:
    started, events = backend
    mock = UPowerMock(bus)
    ac = mock.add_ac()
    battery = mock.add_battery(87.0, 7200)
    power = await start(tmp_path, bus, events, started)
    await wait_until(lambda: power.state.available, "a first reading")
    state = power.state
    assert (state.shore, state.soc, state.time_to_go, state.charging) == (True, 87.0, 7200, False)

    mock.set(ac, Online=dbus.Boolean(False))
    await wait_until(lambda: power.state.shore is False, "the PropertiesChanged of Online")
    assert events.of(ShoreChanged) == [ShoreChanged(False)]
    mock.set(battery, Percentage=dbus.Double(42.0), TimeToEmpty=dbus.Int64(0))
    await wait_until(lambda: power.state.soc == 42.0, "the PropertiesChanged of Percentage")
    assert power.state.time_to_go is None  # 0 is UPower's "unknown", not "empty now"
    mock.set(battery, WarningLevel=dbus.UInt32(3))
    await wait_until(lambda: power.state.alarm == "low-battery", "the warning level")
    assert events.of(DeviceFault) == [DeviceFault("power", "power.alarm.low-battery")]
    mock.stop()


async def test_devices_that_come_later_and_a_restarted_upower_are_followed(
    tmp_path: Path, bus: PrivateBus, backend: tuple[list[UPowerPower], Recorder]
) -> None:
    started, events = backend
    mock = UPowerMock(bus)
    power = await start(tmp_path, bus, events, started)
    await wait_until(lambda: bool(events.of(DeviceFault)), "no data while UPower has no device")
    assert not power.state.available
    mock.add_ac(typed=False)  # DeviceAdded; and the template's untyped line power is still recognised
    await wait_until(lambda: power.state.available, "the added line power")
    assert power.state.shore is True and power.state.soc is None

    mock.stop()  # UPower leaves the bus (NameOwnerChanged)
    await wait_until(lambda: not power.state.available, "no data once UPower is gone")
    mock = UPowerMock(bus)
    ac = mock.add_ac()
    mock.set(ac, Online=dbus.Boolean(False))
    await wait_until(lambda: power.state.available, "UPower back")
    assert power.state.shore is False
    assert events.of(ShoreChanged) == [ShoreChanged(False)]
    mock.stop()


async def test_a_missing_bus_is_no_data_not_a_crash(tmp_path: Path) -> None:
    events = Recorder()
    address = f"unix:path={tmp_path / 'no-bus'}"
    power = UPowerPower(context({"bus_address": address, "reconnect": 0.1}, events, tmp_path, "upower"))
    await power.start()
    try:
        await wait_until(lambda: bool(events.of(DeviceFault)), "the no-data fault")
        assert not power.state.available
    finally:
        await power.close()
