"""The combined backend with real parts: the charge from VE.Direct on a pty, shore and ignition from GPIO contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.power.combined import CombinedPower
from kioskd.errors import DriverNotFound
from kioskd.hal import DeviceFault, IgnitionChanged, PowerSource, ProfileError, ShoreChanged
from tests.integration.power_services import Recorder, VeDirectPort, bmv_block, context, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def port(tmp_path: Path) -> Iterator[VeDirectPort]:
    pty = VeDirectPort(tmp_path)
    yield pty
    pty.close()


def van_options(port: VeDirectPort) -> dict[str, Any]:
    """What a vehicle profile's [devices.power] holds for a BMV on VE.Direct plus relay contacts on GPIO."""
    return {
        "fields": {"soc": "battery", "time_to_go": "battery", "shore": "relays", "ignition": "relays"},
        "parts": {
            "battery": {
                "driver": "vedirect",
                "port": str(port.path),
                "timeout": 0.5,
                # This monitor's own idea of shore (its CS) must lose to the relay: the profile says so.
                "shore": {"label": "CS", "on": ["3"]},
            },
            "relays": {
                "driver": "gpio",
                "shore": {"pin": 17, "active_high": False, "pull": True, "bounce_time": 0.02},
                "ignition": {"pin": 27, "bounce_time": 0.02},
            },
        },
    }


@pytest.fixture
async def combined(
    tmp_path: Path, port: VeDirectPort, pins: MockFactory
) -> AsyncIterator[tuple[CombinedPower, Recorder]]:
    events = Recorder()
    power = CombinedPower(context(van_options(port), events, tmp_path, "combined"))
    await power.start()
    yield power, events
    await power.close()


async def test_each_field_comes_from_the_part_the_profile_names(
    combined: tuple[CombinedPower, Recorder], port: VeDirectPort, pins: MockFactory
) -> None:
    power, events = combined
    assert isinstance(power, PowerSource)
    port.write(bmv_block(SOC="640", CS="3"))  # the BMV's mapping would say "shore"
    await wait_until(lambda: power.state.soc == 64.0, "the BMV's charge")
    state = power.state
    assert state.shore is False, "shore came from the BMV, not from the relay contact"
    assert (state.ignition, state.time_to_go, state.voltage) == (False, 615 * 60, 12.84)  # voltage: first part with it

    pins.pin(17).drive_low()
    await wait_until(lambda: power.state.shore is True, "the relay contact")
    port.write(bmv_block(SOC="641", CS="0"))  # the BMV flips its own shore: not the combined one's business
    await wait_until(lambda: power.state.soc == 64.1, "the next block")
    pins.pin(27).drive_high()
    await wait_until(lambda: power.state.ignition is True, "the ignition")
    assert events.of(ShoreChanged) == [ShoreChanged(True)]
    assert events.of(IgnitionChanged) == [IgnitionChanged(True)]


async def test_a_silent_monitor_leaves_shore_and_ignition_live_and_its_fault_passes_through(
    combined: tuple[CombinedPower, Recorder], port: VeDirectPort, pins: MockFactory
) -> None:
    power, events = combined
    port.write(bmv_block(AR="4"))
    await wait_until(lambda: power.state.soc == 87.6, "the BMV's charge")
    assert events.of(DeviceFault) == [DeviceFault("power", "power.alarm.low-soc")]
    await wait_until(lambda: power.state.soc is None, "the silence timeout", within=5)
    assert power.state.available and power.state.shore is False  # the relays still answer
    assert events.of(DeviceFault)[1:] == [
        DeviceFault("power", "power.alarm.low-soc", cleared=True),
        DeviceFault("power", "power.no-data"),
    ]
    pins.pin(17).drive_low()
    await wait_until(lambda: power.state.shore is True, "the relay contact while the BMV is silent")


def test_profile_mistakes_are_named(tmp_path: Path, port: VeDirectPort) -> None:
    options = van_options(port)
    options["fields"]["soc"] = "nobody"
    with pytest.raises(ProfileError, match="nobody"):
        CombinedPower(context(options, Recorder(), tmp_path, "combined"))
    options = van_options(port)
    options["parts"]["battery"]["driver"] = "vedirekt"
    with pytest.raises(DriverNotFound, match="vedirekt") as missing:
        CombinedPower(context(options, Recorder(), tmp_path, "combined"))
    assert "parts.battery" in missing.value.where
    options = van_options(port)
    options["parts"]["battery"]["prot"] = "/dev/ttyUSB0"
    with pytest.raises(ProfileError, match="prot") as typo:
        CombinedPower(context(options, Recorder(), tmp_path, "combined"))
    assert "parts.battery" in typo.value.where
