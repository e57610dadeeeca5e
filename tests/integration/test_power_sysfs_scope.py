"""The sysfs backend on a umockdev testbed with a peripheral's battery (``scope=Device``: a wireless mouse at 5 %):
it is never taken for the van's battery, whether it is the only battery or comes and goes beside the real one."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from drivers.power.sysfs import SysfsPower
from tests.integration.power_services import Recorder, context, describe, run_under_umockdev, wait_until

pytestmark = pytest.mark.integration


async def umockdev_scenario() -> None:
    """The child's side (not a test): a mini-PC on shore with a wireless mouse, then a UPS battery appears."""
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()
    assert UMockdev.in_mock_environment(), "not under umockdev-wrapper"
    testbed.add_device("power_supply", "AC", None, ["type", "Mains", "online", "1"], ["POWER_SUPPLY_ONLINE", "1"])
    # A Logitech receiver's mouse as the kernel's hidpp driver shows it; "0" sorts before any BAT/UPS name.
    testbed.add_device(
        "power_supply",
        "0-hidpp_battery_0",
        None,
        ["type", "Battery", "scope", "Device", "capacity", "5", "status", "Discharging"],
        ["POWER_SUPPLY_SCOPE", "Device", "POWER_SUPPLY_CAPACITY", "5"],
    )
    events = Recorder()
    power = SysfsPower(context({}, events, Path(tempfile.gettempdir()), "sysfs"))
    named = SysfsPower(context({"battery": "0-hidpp_battery_0"}, Recorder(), Path(tempfile.gettempdir()), "sysfs"))

    def report(step: str) -> None:
        print(json.dumps({"step": step, "state": describe(power.state), "named": describe(named.state)}), flush=True)

    await power.start()
    await named.start()
    await wait_until(lambda: power.state.available and named.state.available, "a first listing")
    report("mouse-only")
    loop = asyncio.get_running_loop()

    def add_ups() -> None:
        ups = testbed.add_device(
            "power_supply",
            "BAT0",
            None,
            ["type", "Battery", "scope", "System", "capacity", "64", "status", "Discharging"],
            ["POWER_SUPPLY_SCOPE", "System", "POWER_SUPPLY_CAPACITY", "64"],
        )
        testbed.uevent(ups, "add")

    await loop.run_in_executor(None, add_ups)
    await wait_until(lambda: power.state.soc is not None, "the system battery")
    report("with-battery")
    await power.close()
    await named.close()


@pytest.fixture(scope="module")
def steps() -> dict[str, dict[str, Any]]:
    lines = run_under_umockdev("tests.integration.test_power_sysfs_scope.umockdev_scenario")
    return {line["step"]: line for line in lines}


def test_a_mouse_battery_is_never_the_vans_battery(steps: dict[str, dict[str, Any]]) -> None:
    state = steps["mouse-only"]["state"]
    assert state["available"] is True and state["shore"] is True
    assert state["soc"] is None and state["charging"] is None  # not 5 %: a critical shutdown for nothing
    assert steps["mouse-only"]["named"]["soc"] is None  # not even when a profile names it


def test_the_system_battery_is_taken_beside_a_device_one(steps: dict[str, dict[str, Any]]) -> None:
    assert steps["with-battery"]["state"]["soc"] == 64
