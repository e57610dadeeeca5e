"""NUT's critical state through a real upsd and dummy-ups into the power policy: ``OB LB`` at a full charge, ``FSD``
on shore and a DC-UPS without ``battery.charge`` end the session and power off, as upsmon's ``is_ups_critical``
would; ``OB`` alone and ``OB LB CAL`` (a calibration) do not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.power.nut import NutPower
from kioskd.clock import RealClock
from kioskd.hal import Event
from kioskd.policies.power import PowerDecision, PowerPolicy
from kioskd.profile import PowerPolicyConfig
from tests.integration.power_services import NutServer, context, nut_server, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def upsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NutServer]:
    with nut_server(tmp_path_factory.mktemp("nut-critical")) as running:
        yield running


class Wired:
    """The NUT backend feeding a power policy, as the station wires them; the policy's decisions kept."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.decisions: list[PowerDecision] = []
        config = PowerPolicyConfig(shore_debounce=0, warn_soc=30, critical_soc=10)
        self.policy = PowerPolicy(config, 1800, RealClock(), self.decisions.append)
        options = {"port": port, "ups": "van", "poll": 0.2, "timeout": 2.0}
        self.power = NutPower(context(options, self._emit, tmp_path, "nut"))

    def _emit(self, event: Event) -> None:
        if isinstance(event, self.policy.events):
            self.policy.on_event(event)

    def shutdowns(self) -> list[str]:
        return [d.key for d in self.decisions if d.action == "shutdown"]


@pytest.fixture(scope="module")
def dc_upsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NutServer]:
    with nut_server(tmp_path_factory.mktemp("nut-dc"), charge=None, runtime=None) as running:
        yield running


async def _wired(tmp_path: Path, server: NutServer, status: str, charge: float | None) -> Wired:
    server.serve(status, charge, None if charge is None else 3600)
    wiring = Wired(tmp_path, server.port)
    await wiring.power.start()
    await wait_until(lambda: wiring.policy.shore is True, "a first reading on shore")
    return wiring


@pytest.fixture
async def wired(tmp_path: Path, upsd: NutServer) -> AsyncIterator[Wired]:
    wiring = await _wired(tmp_path, upsd, "OL CHRG", 100)
    await wait_until(lambda: wiring.policy.level == "ok", "the level judged")
    yield wiring
    await wiring.power.close()


@pytest.fixture
async def dc_wired(tmp_path: Path, dc_upsd: NutServer) -> AsyncIterator[Wired]:
    wiring = await _wired(tmp_path, dc_upsd, "OL", None)
    yield wiring
    await wiring.power.close()


async def test_on_battery_with_low_battery_at_full_charge_shuts_down(upsd: NutServer, wired: Wired) -> None:
    upsd.set("OB LB", 100, 3000)
    await wait_until(lambda: bool(wired.shutdowns()), "the shutdown decision")
    assert wired.shutdowns() == ["power.critical.ups"]
    assert wired.power.state.soc == 100 and wired.power.state.critical
    assert not wired.policy.can_start()
    assert wired.policy.refusal() == ("refused.power.critical", {})


async def test_forced_shutdown_on_shore_shuts_down(upsd: NutServer, wired: Wired) -> None:
    upsd.set("FSD OL", 100, 3600)
    await wait_until(lambda: bool(wired.shutdowns()), "the shutdown decision")
    assert wired.shutdowns() == ["power.critical.ups"]
    assert wired.policy.shore is True  # FSD is critical on shore power too
    assert wired.policy.refusal() == ("refused.power.critical", {})


async def test_a_dc_ups_without_charge_shuts_down_on_low_battery(dc_upsd: NutServer, dc_wired: Wired) -> None:
    wired = dc_wired
    dc_upsd.set("OB DISCHRG", None, None)
    await wait_until(lambda: wired.policy.shore is False, "on battery")
    assert wired.power.state.soc is None and wired.shutdowns() == []  # on battery alone is not critical
    dc_upsd.set("OB LB", None, None)
    await wait_until(lambda: bool(wired.shutdowns()), "the shutdown decision")
    assert wired.shutdowns() == ["power.critical.ups"]


async def test_low_battery_while_calibrating_is_not_critical(upsd: NutServer, wired: Wired) -> None:
    upsd.set("OB LB CAL", 100, 3000)
    await wait_until(lambda: "CAL" in wired.power.state.detail, "the calibration reading")
    assert not wired.power.state.critical and wired.shutdowns() == []
    assert wired.policy.can_start()
