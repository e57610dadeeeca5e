"""The sysfs backend on a umockdev testbed: a Mains supply whose ``online`` changes and a battery's ``capacity``.

umockdev's preload library must be in the process from its start, so the scenario runs in a child under
``umockdev-wrapper`` and prints what it saw, one JSON line per step; the test asserts on those lines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from drivers.power.sysfs import SysfsPower
from kioskd.hal import Event
from tests.integration.power_services import Recorder, context, describe, run_under_umockdev, wait_until

pytestmark = pytest.mark.integration


def as_json(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


async def umockdev_scenario() -> None:
    """The child's side (not a test): build the testbed, drive it, print each step."""
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()  # before pyudev's first Context, or pyudev sees the real /sys
    assert UMockdev.in_mock_environment(), "not under umockdev-wrapper"
    ac = testbed.add_device(
        "power_supply",
        "AC",
        None,
        ["type", "Mains", "online", "1"],
        ["POWER_SUPPLY_NAME", "AC", "POWER_SUPPLY_ONLINE", "1"],
    )
    battery = testbed.add_device(
        "power_supply",
        "BAT0",
        None,
        [
            "type",
            "Battery",
            "capacity",
            "80",
            "status",
            "Discharging",
            "voltage_now",
            "12600000",
            "current_now",
            "3200000",
        ],
        ["POWER_SUPPLY_NAME", "BAT0", "POWER_SUPPLY_CAPACITY", "80"],
    )
    events = Recorder()
    loop = asyncio.get_running_loop()
    power = SysfsPower(context({}, events, Path(tempfile.gettempdir()), "sysfs"))
    mark = 0

    def report(step: str) -> None:
        nonlocal mark
        seen = [as_json(event) for event in events.events[mark:]]
        mark = events.mark()
        print(json.dumps({"step": step, "state": describe(power.state), "events": seen}), flush=True)

    def change(device: str, attribute: str, value: str) -> None:
        testbed.set_attribute(device, attribute, value)
        testbed.set_property(device, f"POWER_SUPPLY_{attribute.upper()}", value)
        testbed.uevent(device, "change")

    await power.start()
    report("start")
    # The testbed is driven off the loop, as a kernel would, so the backend's hand-over is what brings the news.
    await loop.run_in_executor(None, change, ac, "online", "0")
    await wait_until(lambda: power.state.shore is False, "the unplug")
    report("unplugged")
    await loop.run_in_executor(None, change, battery, "capacity", "79")
    await wait_until(lambda: power.state.soc == 79, "the new capacity")
    report("discharged")
    await loop.run_in_executor(None, change, ac, "online", "1")
    await wait_until(lambda: power.state.shore is True, "the plug")
    report("plugged")

    def remove(device: str) -> None:
        testbed.uevent(device, "remove")
        testbed.remove_device(device)

    await loop.run_in_executor(None, remove, battery)
    await wait_until(lambda: power.state.soc is None, "the battery's removal")
    report("battery-removed")
    await loop.run_in_executor(None, remove, ac)
    await wait_until(lambda: not power.state.available, "no supply left")
    report("all-removed")
    await power.close()


@pytest.fixture(scope="module")
def steps() -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in run_under_umockdev("tests.integration.test_power_sysfs.umockdev_scenario")}


def test_mains_online_is_shore_and_the_battery_capacity_is_the_charge(steps: dict[str, dict[str, Any]]) -> None:
    state = steps["start"]["state"]
    assert state["available"] is True and state["shore"] is True and state["soc"] == 80
    assert state["voltage"] == 12.6 and state["current"] == -3.2 and state["charging"] is False
    assert [event["type"] for event in steps["start"]["events"]] == ["PowerChanged"]


def test_udev_change_events_flip_the_shore_with_one_event_each(steps: dict[str, dict[str, Any]]) -> None:
    unplugged = steps["unplugged"]["events"]
    assert {"type": "ShoreChanged", "connected": False} in unplugged
    assert steps["discharged"]["state"]["soc"] == 79
    assert [e for e in steps["discharged"]["events"] if e["type"] == "ShoreChanged"] == []
    assert [e for e in steps["plugged"]["events"] if e["type"] == "ShoreChanged"] == [
        {"type": "ShoreChanged", "connected": True}
    ]


def test_removed_supplies_stop_being_reported_and_none_left_is_no_data(steps: dict[str, dict[str, Any]]) -> None:
    after_battery = steps["battery-removed"]["state"]
    assert after_battery["available"] is True and after_battery["shore"] is True and after_battery["soc"] is None
    last = steps["all-removed"]
    assert last["state"]["available"] is False
    assert {"type": "DeviceFault", "kind": "power", "fault": "power.no-data", "cleared": False} in last["events"]
