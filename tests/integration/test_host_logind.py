"""The logind host on a private D-Bus with python-dbusmock's logind template; and the simulated van's host."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dbusmock
import pytest

from drivers.host.logind import LogindHost
from drivers.sim.host import SimHost
from drivers.sim.power import SimPower
from kioskd.clock import ManualClock
from kioskd.hal import DeviceError, DriverContext, Host
from tests.integration.power_services import PrivateBus, Recorder, private_bus, wait_until

pytestmark = pytest.mark.integration

LOGIND = "org.freedesktop.login1"
MANAGER = "org.freedesktop.login1.Manager"


class LogindMock:
    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.process = bus.spawn_mock("logind", LOGIND)
        self.connection = bus.connection()
        self.object = self.connection.get_object(LOGIND, "/org/freedesktop/login1")

    def calls(self, method: str) -> list[list[Any]]:
        """The arguments of each call of ``method`` (dbusmock's call log)."""
        log = self.object.GetCalls(dbus_interface=dbusmock.MOCK_IFACE)
        return [list(args) for _, name, args in log if str(name) == method]

    def inhibitors(self) -> list[tuple[str, ...]]:
        listed = self.object.ListInhibitors(dbus_interface=MANAGER)
        return [(str(what), str(who), str(why), str(mode)) for what, who, why, mode, _uid, _pid in listed]

    def stop(self) -> None:
        self.connection.close()
        self.bus.stop_mock(self.process)


@pytest.fixture
def logind() -> Iterator[LogindMock]:
    with private_bus() as bus:
        mock = LogindMock(bus)
        yield mock
        mock.stop()


def host_context(tmp_path: Path, options: dict[str, Any], clock: Any = None) -> DriverContext:
    return DriverContext(
        kind="power",
        driver="logind",
        options=options,
        clock=clock or ManualClock(),
        emit=Recorder(),
        runtime_dir=tmp_path,
        source="test-profile.toml",
    )


@pytest.fixture
async def host(tmp_path: Path, logind: LogindMock) -> AsyncIterator[LogindHost]:
    backend = LogindHost(host_context(tmp_path, {"bus_address": logind.bus.address}))
    await backend.start()
    yield backend
    await backend.close()


async def test_power_off_calls_logind_once_and_not_interactively(host: LogindHost, logind: LogindMock) -> None:
    assert isinstance(host, Host)
    assert logind.calls("PowerOff") == []
    await host.power_off()
    assert logind.calls("PowerOff") == [[False]]


async def test_inhibit_holds_a_delay_lock_until_released(host: LogindHost, logind: LogindMock) -> None:
    lock = await host.inhibit("wipe of session 12")
    assert lock.fd is not None
    os.fstat(lock.fd)  # a real descriptor was passed over the bus
    assert logind.calls("Inhibit") == [["shutdown:sleep", "kioskd", "wipe of session 12", "delay"]]
    assert logind.inhibitors() == [("shutdown:sleep", "kioskd", "wipe of session 12", "delay")]
    lock.release()
    assert lock.fd is None
    await wait_until(lambda: logind.inhibitors() == [], "logind to drop the inhibitor", within=5)
    lock.release()  # twice is harmless


async def test_logind_gone_is_a_device_error_naming_what_to_check(host: LogindHost, logind: LogindMock) -> None:
    logind.stop()
    with pytest.raises(DeviceError, match="PowerOff") as refused:
        await host.power_off()
    assert refused.value.action


async def test_sim_host_records_power_off_and_locks_on_the_van_timeline(tmp_path: Path) -> None:
    clock = ManualClock(start=100.0)
    ctx = host_context(tmp_path, {}, clock)
    power = SimPower(ctx)  # creates the simulated van in ctx.shared
    host = SimHost(ctx)
    assert isinstance(host, Host)
    lock = await host.inhibit("wipe")
    assert [lock_.why for lock_ in host.held] == ["wipe"]
    await clock.advance(5)
    lock.release()
    lock.release()
    await host.power_off()
    assert host.powered_off and host.held == []
    assert list(host.history) == [(100.0, "acquire", "wipe"), (105.0, "release", "wipe"), (105.0, "power_off", "")]
    power.van.history.assert_states_and_times(
        [(100.0, "acquire"), (105.0, "release"), (105.0, "power_off")], device="host"
    )
