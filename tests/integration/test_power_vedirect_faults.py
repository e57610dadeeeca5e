"""VE.Direct through socat's ptys into the power policy: MPPT, charger and inverter fault fields (ERR, AR, WARN, OR,
AC_OUT_V) become notices; a part that stops talking is named in a notice and its silence is not shore."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.power.combined import CombinedPower
from drivers.power.vedirect import VeDirectPower
from kioskd.clock import RealClock
from kioskd.hal import DeviceFault, Event
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from tests.integration.power_services import Recorder, SocatSerial, block, bmv_block, context, wait_until

pytestmark = pytest.mark.integration

MPPT = {"PID": "0xA053", "V": "13250", "I": "8200", "VPV": "36120", "PPV": "112", "CS": "3", "MPPT": "2"}
INVERTER = {"PID": "0xA231", "MODE": "2", "CS": "9", "AR": "0", "WARN": "0", "V": "12710", "AC_OUT_V": "23010"}


@pytest.fixture
def lines(tmp_path: Path) -> Iterator[Callable[[str], SocatSerial]]:
    made: list[SocatSerial] = []

    def make(serial: str) -> SocatSerial:
        line = SocatSerial(tmp_path, serial)
        made.append(line)
        return line

    yield make
    for line in made:
        line.stop()


def active(events: Recorder) -> set[str]:
    faults: set[str] = set()
    for event in events.of(DeviceFault):
        (faults.discard if event.cleared else faults.add)(event.fault)
    return faults


async def test_mppt_error_and_off_reason_become_notices_and_clear(
    tmp_path: Path, lines: Callable[[str], SocatSerial]
) -> None:
    line = lines("HQ2201AAAAA")
    events = Recorder()
    power = VeDirectPower(context({"port": str(line.path), "timeout": 2.0}, events, tmp_path, "vedirect"))
    await power.start()
    try:
        line.write(block(**MPPT, ERR="0", OR="0x00000000"))
        await wait_until(lambda: power.state.available, "a first block")
        assert active(events) == set()
        line.write(block(**{**MPPT, "CS": "2"}, ERR="17", OR="0x00000010"))  # too hot: protection off
        await wait_until(lambda: bool(active(events)), "the fault notices")
        assert active(events) == {"power.fault.charger-hot", "power.off.protection"}
        line.write(block(**MPPT, ERR="33", OR="0x00000001"))  # night (no input) is no fault; PV too high is
        await wait_until(lambda: "power.fault.solar-input" in active(events), "the next error")
        assert active(events) == {"power.fault.solar-input"}
        line.write(block(**MPPT, ERR="0", OR="0x00000000"))
        await wait_until(lambda: not active(events), "all cleared")
    finally:
        await power.close()


async def test_inverter_warnings_and_ac_output_out_of_range_become_notices(
    tmp_path: Path, lines: Callable[[str], SocatSerial]
) -> None:
    line = lines("HQ2202BBBBB")
    events = Recorder()
    power = VeDirectPower(context({"port": str(line.path), "timeout": 2.0}, events, tmp_path, "vedirect"))
    await power.start()
    try:
        line.write(block(**INVERTER))
        await wait_until(lambda: power.state.available, "a first block")
        assert active(events) == set()
        line.write(block(**{**INVERTER, "WARN": "0x1", "AC_OUT_V": "19850"}))  # low battery warning, sagging AC
        await wait_until(lambda: len(active(events)) == 2, "the warning notices")
        assert active(events) == {"power.alarm.low-voltage", "power.alarm.low-ac-out-voltage"}
        line.write(block(**{**INVERTER, "CS": "0", "AC_OUT_V": "0", "OR": "0x00000002"}))  # switched off: no AC
        await wait_until(lambda: "power.off.switch" in active(events), "the off reason")
        assert active(events) == {"power.off.switch"}
    finally:
        await power.close()


class Wired:
    """A power source feeding a power policy, the policy's decisions kept."""

    def __init__(self, silence: float) -> None:
        self.decisions: list[PowerDecision] = []
        config = PowerPolicyConfig(shore_debounce=0, silence_timeout=silence)
        self.policy = PowerPolicy(config, 1800, RealClock(), self.decisions.append)

    def emit(self, event: Event) -> None:
        if isinstance(event, self.policy.events):
            self.policy.on_event(event)

    def keys(self) -> list[str]:
        return [d.key for d in self.decisions]


async def _talk(line: SocatSerial, payload: Callable[[], bytes]) -> None:
    while True:
        with contextlib.suppress(OSError):
            line.write(payload())
        await asyncio.sleep(0.2)


@pytest.fixture
async def talkers() -> AsyncIterator[list[asyncio.Task[Any]]]:
    tasks: list[asyncio.Task[Any]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_silent_charger_is_named_and_its_silence_is_not_shore(
    tmp_path: Path, lines: Callable[[str], SocatSerial], talkers: list[asyncio.Task[Any]]
) -> None:
    battery, charger = lines("HQ2132AAAAA"), lines("HQ2132ABCDE")
    wired = Wired(silence=1.0)
    options = {
        "fields": {"soc": "battery", "shore": "charger"},
        "parts": {
            "battery": {"driver": "vedirect", "port": str(battery.path), "timeout": 0.6},
            "charger": {
                "driver": "vedirect",
                "port": str(charger.path),
                "timeout": 0.6,
                "shore": {"label": "CS", "on": ["3", "4", "5"]},
            },
        },
    }
    power = CombinedPower(context(options, wired.emit, tmp_path, "combined"))
    talkers.append(asyncio.create_task(_talk(battery, lambda: bmv_block(SOC="800"))))
    talkers.append(asyncio.create_task(_talk(charger, lambda: block(PID="0xA339", CS="5", ERR="0"))))
    await power.start()
    try:
        await wait_until(lambda: wired.policy.shore is True and wired.policy.last.soc == 80, "on shore")
        assert wired.keys() == []
        talkers.pop().cancel()  # the charger goes quiet with the mains
        await wait_until(lambda: wired.policy.shore is False, "shore counted as unplugged", within=10)
        assert wired.policy.silent == ("charger",)
        assert wired.keys() == ["power.silent", "power.shore.disconnected"]
        assert wired.policy.time_to_go() is not None or wired.policy.level == "ok"  # judged on battery again
        talkers.append(asyncio.create_task(_talk(charger, lambda: block(PID="0xA339", CS="5", ERR="0"))))
        await wait_until(lambda: wired.policy.shore is True, "shore back")
        assert wired.policy.silent == () and wired.keys()[-2:] == ["power.silent", "power.shore.connected"]
    finally:
        await power.close()


async def test_a_silent_single_monitor_is_not_shore_after_the_timeout(
    tmp_path: Path, lines: Callable[[str], SocatSerial], talkers: list[asyncio.Task[Any]]
) -> None:
    line = lines("HQ2133CCCCC")
    wired = Wired(silence=1.0)
    options = {"port": str(line.path), "timeout": 0.6, "shore": {"label": "CS", "on": ["3", "4", "5"]}}
    power = VeDirectPower(context(options, wired.emit, tmp_path, "vedirect"))
    talkers.append(asyncio.create_task(_talk(line, lambda: bmv_block(CS="5", SOC="900"))))
    await power.start()
    try:
        await wait_until(lambda: wired.policy.shore is True, "on shore")
        line.stop()  # the cable is pulled: socat's pty goes away
        await wait_until(lambda: wired.policy.shore is False, "shore counted as unplugged", within=10)
        assert wired.policy.silent == ("power",)
        assert wired.keys() == ["power.silent", "power.shore.disconnected"]
    finally:
        await power.close()
