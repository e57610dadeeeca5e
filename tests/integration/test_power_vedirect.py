"""The VE.Direct backend on a real pty pair: blocks, corrupted blocks, HEX frames, garbage, silence and a replug."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.power.vedirect import VeDirectPower
from kioskd.hal import DeviceFault, PowerChanged, ProfileError, ShoreChanged
from tests.integration.power_services import (
    HEX_FRAMES,
    Recorder,
    VeDirectPort,
    bmv_block,
    context,
    corrupted,
    wait_until,
)

pytestmark = pytest.mark.integration

CHARGER_ON = {"label": "CS", "on": ["3", "4", "5", "6", "7", "11"]}


@pytest.fixture
def port(tmp_path: Path) -> Iterator[VeDirectPort]:
    pty = VeDirectPort(tmp_path)
    yield pty
    pty.close()


Factory = Callable[..., Any]


@pytest.fixture
async def backend(tmp_path: Path, port: VeDirectPort) -> AsyncIterator[Factory]:
    started: list[VeDirectPower] = []

    async def make(recorder: Recorder, **options: Any) -> VeDirectPower:
        power = VeDirectPower(context({"port": str(port.path), **options}, recorder, tmp_path, "vedirect"))
        await power.start()
        started.append(power)
        return power

    yield make
    for power in started:
        await power.close()


async def test_blocks_through_a_pty_become_the_power_state(port: VeDirectPort, backend: Factory) -> None:
    events = Recorder()
    power = await backend(events, shore=CHARGER_ON)
    port.write(bmv_block())
    await wait_until(lambda: power.state.available, "a first reading")
    state = power.state
    assert (state.voltage, state.current, state.power) == (12.84, -4.1, -53.0)
    assert state.soc == 87.6 and state.time_to_go == 615 * 60
    assert state.shore is True and state.charging is False and state.detail == "bulk"
    assert events.of(ShoreChanged) == []  # the first reading is not a flip

    port.write(bmv_block(CS="0", SOC="875"))  # the charger stops: no grid
    await wait_until(lambda: power.state.soc == 87.5, "the second block")
    assert events.of(ShoreChanged) == [ShoreChanged(False)]
    assert power.state.shore is False


async def test_corrupted_blocks_hex_frames_and_garbage_are_counted_and_never_reach_the_state(
    port: VeDirectPort, backend: Factory
) -> None:
    events = Recorder()
    power = await backend(events)
    port.write(bmv_block(SOC="500"))
    await wait_until(lambda: power.state.soc == 50.0, "a first reading")
    port.write(corrupted(bmv_block(SOC="100")))
    port.write(HEX_FRAMES[0] + b"\x00\xff\xfegarbage" + HEX_FRAMES[1])
    block = bmv_block(SOC="510")
    cut = block.index(b"\r\nTTG")
    port.write(block[:cut] + HEX_FRAMES[2] + block[cut:])  # a HEX frame inside a text block
    await wait_until(lambda: power.state.soc == 51.0, "the block after the noise")
    socs = [event.state.soc for event in events.of(PowerChanged)]
    assert socs == [50.0, 51.0], "a corrupted block leaked into the state"
    counters = power.counters
    assert counters["blocks"] == 2
    assert counters["bad_checksums"] == 1
    assert counters["hex_frames"] == 3
    assert counters["garbage"] >= 10


async def test_a_silent_port_is_no_data_after_the_timeout_and_recovers(port: VeDirectPort, backend: Factory) -> None:
    events = Recorder()
    power = await backend(events, timeout=0.5)
    port.write(bmv_block())
    await wait_until(lambda: power.state.available, "a first reading")
    await wait_until(lambda: not power.state.available, "no data after silence", within=5)
    assert power.state.soc is None  # stale values are not passed off as current
    assert events.of(DeviceFault) == [DeviceFault("power", "power.no-data")]
    port.write(bmv_block())
    await wait_until(lambda: power.state.available, "data again")
    assert events.of(DeviceFault)[-1] == DeviceFault("power", "power.no-data", cleared=True)


async def test_alarm_bits_raise_faults_and_clear_them(port: VeDirectPort, backend: Factory) -> None:
    events = Recorder()
    power = await backend(events)
    port.write(bmv_block(AR="5", Alarm="ON"))
    await wait_until(lambda: power.state.alarm is not None, "the alarm")
    assert power.state.alarm == "low-voltage,low-soc"
    assert events.of(DeviceFault) == [
        DeviceFault("power", "power.alarm.low-voltage"),
        DeviceFault("power", "power.alarm.low-soc"),
    ]
    port.write(bmv_block(AR="1"))
    await wait_until(lambda: power.state.alarm == "low-voltage", "one alarm over")
    # The station keeps one notice per device: the alarm still on is shown again after the clear.
    assert events.of(DeviceFault)[2:] == [
        DeviceFault("power", "power.alarm.low-soc", cleared=True),
        DeviceFault("power", "power.alarm.low-voltage"),
    ]


async def test_an_unplugged_adapter_is_no_data_at_once_and_is_reopened_when_back(
    port: VeDirectPort, backend: Factory
) -> None:
    events = Recorder()
    power = await backend(events, timeout=60, reopen=0.2)
    port.write(bmv_block())
    await wait_until(lambda: power.state.available, "a first reading")
    port.unplug()
    # Well before the 60 s silence timeout: the loss itself must be noticed.
    await wait_until(lambda: not power.state.available, "no data after the unplug", within=5)
    port.replug()
    port.write(bmv_block(SOC="700"))
    await wait_until(lambda: power.state.soc == 70.0, "a reading from the new adapter", within=10)
    assert DeviceFault("power", "power.no-data", cleared=True) in events.events


async def test_a_missing_port_is_no_data_and_bad_options_are_profile_errors(tmp_path: Path) -> None:
    events = Recorder()
    power = VeDirectPower(context({"port": str(tmp_path / "nothing"), "reopen": 0.1}, events, tmp_path, "vedirect"))
    await power.start()
    try:
        await wait_until(lambda: bool(events.of(DeviceFault)), "the no-data fault")
        assert not power.state.available
    finally:
        await power.close()
    with pytest.raises(ProfileError, match="shore"):
        VeDirectPower(context({"port": "/dev/x", "shore": {"label": "CS"}}, events, tmp_path, "vedirect"))
    with pytest.raises(ProfileError, match="baud"):
        VeDirectPower(context({"port": "/dev/x", "baud": 12345}, events, tmp_path, "vedirect"))
