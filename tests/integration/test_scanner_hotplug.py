"""Scanner hotplug through udev: umockdev fakes the USB scanner appearing and vanishing (also in the middle of a
job) and the SANE backend's state must follow without a restart.

umockdev works only in a process started under its preload library, so the scenario runs in a child process
(``umockdev-wrapper python -m tests.integration.test_scanner_hotplug``) that prints what it saw as JSON; the tests
here judge it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from kioskd.hal import DeviceFault, ScannerChanged, ScanRequest
from tests.integration import require
from tests.integration.sane_service import EventLog, sane_test_backend, scanner_context

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = ScanRequest(source="adf", multi=True, resolution=75, mode="gray")
# What SANE's udev rules leave on a supported USB scanner, and a device they do not know (a keyboard).
SCANNER = (["idVendor", "04a9", "idProduct", "1905"], ["DEVTYPE", "usb_device", "libsane_matched", "yes"])
KEYBOARD = (["idVendor", "046d", "idProduct", "c31c"], ["DEVTYPE", "usb_device", "ID_INPUT_KEYBOARD", "1"])


# --------------------------------------------------------------------------------------------------- child
async def scenario() -> dict[str, Any]:
    """Runs under umockdev-wrapper: plug, scan, unplug, scan, replug, unplug mid-job, replug."""
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    from drivers.scanner.sane import SaneScanner

    # The testbed must exist before anything makes a pyudev context, or pyudev reads the real /sys.
    testbed = UMockdev.Testbed.new()
    log = EventLog()
    seen: dict[str, Any] = {}
    options = {"test-picture": "Grid", "read-return-value": "Default"}
    with tempfile.TemporaryDirectory() as runtime:
        scanner = SaneScanner(scanner_context(Path(runtime), log, device="test:0", sane_options=options))
        await scanner.start()
        seen["at_start"] = asdict(scanner.state)

        keyboard = testbed.add_device("usb", "usb1/1-1", None, *KEYBOARD)
        await asyncio.sleep(0.2)  # a udev event arrives in a few ms; nothing must follow this one
        seen["keyboard_plugged"] = asdict(scanner.state)

        device = testbed.add_device("usb", "usb1/1-2", None, *SCANNER)
        await log.wait_for(lambda: scanner.state.status == "idle")
        seen["scanner_plugged"] = asdict(scanner.state)
        seen["scan_when_plugged"] = len((await scanner.scan(FAST)).pages)

        testbed.uevent(keyboard, "remove")
        testbed.remove_device(keyboard)
        await asyncio.sleep(0.2)
        seen["keyboard_unplugged"] = asdict(scanner.state)

        testbed.uevent(device, "remove")
        testbed.remove_device(device)
        await log.wait_for(lambda: not scanner.state.present)
        seen["scanner_unplugged"] = asdict(scanner.state)
        result = await scanner.scan(FAST)
        seen["scan_when_unplugged"] = {"pages": len(result.pages), "fault": result.fault}

        device = testbed.add_device("usb", "usb1/1-2", None, *SCANNER)
        await log.wait_for(lambda: scanner.state.status == "idle")
        seen["scanner_replugged"] = asdict(scanner.state)

        def pull_cable(number: int, opened: int) -> dict[str, object] | None:
            # On the worker, before the third sheet: the scanner vanishes, and its next read fails as a vanished
            # USB device's does.
            if number != 3:
                return None
            testbed.uevent(device, "remove")
            testbed.remove_device(device)
            log.wait(lambda: not scanner.state.present)
            return {"read-return-value": "SANE_STATUS_IO_ERROR"}

        scanner.before_page = pull_cable
        result = await scanner.scan(FAST)
        scanner.before_page = None
        seen["unplugged_mid_job"] = {"pages": len(result.pages), "fault": result.fault}
        seen["after_mid_job"] = asdict(scanner.state)

        testbed.add_device("usb", "usb1/1-2", None, *SCANNER)
        await log.wait_for(lambda: scanner.state.status == "idle")
        seen["back_after_mid_job"] = asdict(scanner.state)
        seen["scan_when_back"] = len((await scanner.scan(FAST)).pages)
        await scanner.close()
    seen["states"] = [[e.state.present, e.state.status, e.state.fault] for e in log.of(ScannerChanged)]
    seen["faults"] = [[e.fault, e.cleared] for e in log.of(DeviceFault)]
    return seen


# --------------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    wrapper = require.binary("umockdev-wrapper", "umockdev")
    try:
        import gi

        gi.require_version("UMockdev", "1.0")
    except (ImportError, ValueError):
        pytest.fail(
            "umockdev's GObject bindings are missing: run `apt-get install gir1.2-umockdev-1.0` then `make test`"
        )
    with sane_test_backend(tmp_path_factory.mktemp("sane")) as config:
        env = {**os.environ, "SANE_CONFIG_DIR": str(config)}
        started = time.monotonic()
        child = subprocess.run(
            [wrapper, sys.executable, "-m", "tests.integration.test_scanner_hotplug"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert child.returncode == 0, (
        f"the umockdev scenario failed after {time.monotonic() - started:.1f} s:\n{child.stderr}"
    )
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def test_no_scanner_plugged_reads_absent(seen: dict[str, Any]) -> None:
    assert seen["at_start"]["present"] is False and seen["at_start"]["status"] == "absent"


def test_a_usb_device_that_is_not_a_scanner_changes_nothing(seen: dict[str, Any]) -> None:
    assert seen["keyboard_plugged"]["present"] is False
    assert seen["keyboard_unplugged"]["present"] is True


def test_plugging_the_scanner_makes_it_present_and_usable(seen: dict[str, Any]) -> None:
    state = seen["scanner_plugged"]
    assert state["present"] is True and state["status"] == "idle" and state["sources"] == ["flatbed", "adf"]
    assert seen["scan_when_plugged"] == 10


def test_unplugging_the_scanner_makes_it_absent_and_jobs_report_it(seen: dict[str, Any]) -> None:
    assert seen["scanner_unplugged"]["present"] is False and seen["scanner_unplugged"]["status"] == "absent"
    assert seen["scan_when_unplugged"] == {"pages": 0, "fault": "unplugged"}
    assert seen["scanner_replugged"]["present"] is True and seen["scanner_replugged"]["status"] == "idle"


def test_unplug_mid_job_keeps_the_pages_before_it_and_says_unplugged(seen: dict[str, Any]) -> None:
    assert seen["unplugged_mid_job"] == {"pages": 2, "fault": "unplugged"}
    assert seen["after_mid_job"]["present"] is False and seen["after_mid_job"]["fault"] == "unplugged"
    assert ["scanner.unplugged", False] in seen["faults"]


def test_replugging_after_a_mid_job_unplug_clears_the_fault_and_scans_again(seen: dict[str, Any]) -> None:
    back = seen["back_after_mid_job"]
    assert back["present"] is True and back["status"] == "idle" and back["fault"] is None
    assert seen["faults"][-1] == ["scanner.unplugged", True]
    assert seen["scan_when_back"] == 10


def test_every_change_is_published_in_order(seen: dict[str, Any]) -> None:
    presence = [present for present, _status, _fault in seen["states"]]
    # absent at start is the initial state (no event); then plug, unplug, replug, mid-job unplug, replug.
    flips = [present for i, present in enumerate(presence) if i == 0 or present != presence[i - 1]]
    assert flips == [True, False, True, False, True]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario())))
