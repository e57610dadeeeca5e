"""The NUT backend against a private upsd and the dummy-ups driver: OL → OB → OB LB, and upsd restarting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.power.nut import NutPower, split_line
from kioskd.hal import DeviceFault, PowerChanged, ShoreChanged
from tests.integration.power_services import NutServer, Recorder, context, nut_server, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def upsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NutServer]:
    # One upsd for the module: it needs about two seconds before it serves its driver's first reading.
    with nut_server(tmp_path_factory.mktemp("nut")) as running:
        yield running


@pytest.fixture
def server(upsd: NutServer) -> NutServer:
    """The module's upsd, running and on shore power with a full battery when the test starts."""
    if upsd.upsd is None:
        upsd.start_upsd()
    upsd.serve("OL CHRG", 100, 3600)
    return upsd


@pytest.fixture
async def nut(tmp_path: Path, server: NutServer) -> AsyncIterator[tuple[NutPower, Recorder]]:
    events = Recorder()
    options = {"port": server.port, "ups": "van", "poll": 0.2, "timeout": 2.0}
    power = NutPower(context(options, events, tmp_path, "nut"))
    await power.start()
    yield power, events
    await power.close()


async def test_status_changes_reach_the_state_in_order(server: NutServer, nut: tuple[NutPower, Recorder]) -> None:
    power, events = nut
    await wait_until(lambda: power.state.soc == 100, "the first reading")
    assert power.state.shore is True and power.state.charging is True and power.state.time_to_go == 3600

    server.set("OB DISCHRG", 80, 1800)
    await wait_until(lambda: power.state.shore is False, "on battery")
    assert events.of(ShoreChanged) == [ShoreChanged(False)]
    assert power.state.soc == 80 and power.state.time_to_go == 1800 and power.state.charging is False
    assert events.of(DeviceFault) == []

    server.set("OB LB", 20, 300)
    await wait_until(lambda: power.state.alarm == "low-battery", "the low-battery flag")
    assert events.of(DeviceFault) == [DeviceFault("power", "power.alarm.low-battery")]
    assert power.state.soc == 20 and power.state.time_to_go == 300
    shores = [e.state.shore for e in events.of(PowerChanged) if e.state.available]
    assert shores == sorted(shores, reverse=True), "shore went back to True on the way"


async def test_a_restarted_upsd_is_no_data_meanwhile_then_reconnected(
    server: NutServer, nut: tuple[NutPower, Recorder]
) -> None:
    power, events = nut
    await wait_until(lambda: power.state.available, "the first reading")
    server.stop_upsd()
    await wait_until(lambda: not power.state.available, "no data while upsd is down")
    assert events.of(DeviceFault) == [DeviceFault("power", "power.no-data")]
    server.set("OB DISCHRG", 64, 2400)
    server.start_upsd()
    await wait_until(lambda: power.state.soc == 64, "a reading from the new upsd", within=15)
    assert power.connections == 2
    assert events.of(DeviceFault)[-1] == DeviceFault("power", "power.no-data", cleared=True)
    assert events.of(ShoreChanged) == [ShoreChanged(False)]  # unplugged while upsd was down: still a flip


async def test_an_unknown_ups_is_no_data_not_a_crash(tmp_path: Path, server: NutServer) -> None:
    events = Recorder()
    options = {"port": server.port, "ups": "nope", "poll": 0.2, "timeout": 0.5}
    power = NutPower(context(options, events, tmp_path, "nut"))
    await power.start()
    try:
        await wait_until(lambda: bool(events.of(DeviceFault)), "the no-data fault")
        assert not power.state.available and power.connections == 1
    finally:
        await power.close()


def test_protocol_words_keep_quoted_values_whole() -> None:
    assert split_line('VAR van ups.status "OB LB"') == ["VAR", "van", "ups.status", "OB LB"]
    assert split_line(r'VAR van desc "a \"quoted\" \\ desc"') == ["VAR", "van", "desc", 'a "quoted" \\ desc']
    assert split_line("ERR DATA-STALE") == ["ERR", "DATA-STALE"]
