"""Time from the preferred uplink's failure to the traffic moving to the other one, with the profile's defaults
(probe period 60 s, probe timeout 5 s, switch back after 300 s): a real station on a manual clock, NetworkManager
and ModemManager as python-dbusmock templates on a private bus, and two real veth wires into network namespaces,
one cut at a random moment of the probe period. "Moved" means NetworkManager received the new route metrics
(``Update`` + ``Device.Reapply``), which is what moves a real van's default route. Prints figures; asserts
nothing."""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kioskd.policies.connectivity import make_probe  # noqa: E402
from kioskd.profile import SIM_PROFILE, ConnectivityConfig, parse_profile  # noqa: E402
from tests.conftest import make_rig  # noqa: E402
from tests.integration.modem_service import ModemManagerMock  # noqa: E402
from tests.integration.network_service import (  # noqa: E402
    PROBE_ADDRESS,
    PROBE_PORT,
    NetworkManagerMock,
    Wire,
)
from tests.integration.power_services import private_bus, wait_until  # noqa: E402

TRIALS = 5
UPLINKS = [
    {"name": "orange", "kind": "gsm", "apn": "orange", "interface": "cdc-wdm0", "modem": "8"},
    {"name": "sfr", "kind": "gsm", "apn": "sl2sfr", "interface": "cdc-wdm1", "modem": "9"},
]


def profile(address: str) -> Any:
    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = "directory"
    data["devices"]["modem"] = {"driver": "networkmanager", "bus_address": address, "modem_bus_address": address,
                                "uplinks": UPLINKS, "reconnect": 0.2}  # fmt: skip
    # every timing at its default: only the probe's target is this bench's
    data["connectivity"] = {"probe": "http", "probe_url": f"http://{PROBE_ADDRESS}:{PROBE_PORT}/", "probe_status": 200}
    return parse_profile(data, "bench-profile.toml")


async def trial(phase: float, tmp: Path) -> tuple[float, float, float]:
    """(seconds of the probe period left when the wire was cut, real seconds of the round that switched,
    simulated seconds before the traffic went back once the wire was mended)."""
    with private_bus() as bus:
        mm, nm = ModemManagerMock(bus), NetworkManagerMock(bus)
        a, b = Wire("a", 1), Wire("b", 2)
        rig = None
        try:
            mm.add_modem(operator="Orange F")
            mm.add_modem(number=9, operator="SFR", quality=55, figures=(-101.0, -12.0, 4.0))
            devices = [nm.add_device(f"wwan{i}", f"cdc-wdm{i}", w.interface) for i, w in enumerate((a, b))]
            rig = await make_rig(tmp, profile(bus.address))
            await wait_until(lambda: len(nm.connections()) == 2, "the connections")
            for uplink, device in zip(UPLINKS, devices, strict=True):
                nm.activate(f"kioskd-{uplink['name']}", device)
            await wait_until(lambda: all(u.active for u in rig.station.state.modem.uplinks), "the uplinks")
            period = rig.station.profile.connectivity.period
            await rig.clock.advance(0)
            await rig.station.idle()
            await rig.clock.advance(phase)  # the wire dies this far into the probe period
            a.cut()
            left = period - phase
            await rig.clock.advance(period - rig.clock.monotonic() - 0.01)
            await rig.station.idle()
            assert rig.station.state.connectivity.uplink == "orange"  # nothing noticed before the next probe
            began = time.monotonic()
            await rig.clock.advance(0.02)  # the next probe round
            await rig.station.idle()
            switching = time.monotonic() - began
            assert rig.station.state.connectivity.uplink == "sfr"
            a.mend()
            back = 0.0
            while rig.station.state.connectivity.uplink != "orange":
                await rig.clock.advance(1)
                await rig.station.idle()
                back += 1
            return left, switching, back
        finally:
            if rig is not None:
                await rig.station.close()
                for _, device in rig.devices.all():
                    await device.close()
            a.close()
            b.close()
            nm.close()
            mm.close()


async def dead_probe_seconds() -> float:
    """Real seconds a bound probe takes to give up on a cut wire (the probe timeout, by default 5 s)."""
    a = Wire("p", 3)
    try:
        a.cut()
        config = ConnectivityConfig(probe="http", probe_url=f"http://{PROBE_ADDRESS}:{PROBE_PORT}/", probe_status=200)
        began = time.monotonic()
        await make_probe(config, None, a.interface)()  # type: ignore[arg-type]
        return time.monotonic() - began
    finally:
        a.close()


async def main() -> None:
    phases = [random.Random(21 + i).uniform(0, 60) for i in range(TRIALS)]
    results = []
    for phase in phases:
        with tempfile.TemporaryDirectory(prefix="kioskd-bench-") as tmp:
            results.append(await trial(phase, Path(tmp)))
    totals = [left + switching for left, switching, _ in results]
    dead = await dead_probe_seconds()
    print(f"uplink failover, {TRIALS} trials, defaults (period 60 s, probe timeout 5 s, switch back after 300 s)")
    for (left, switching, back), total in zip(results, totals, strict=True):
        print(f"  wait for the next probe {left:5.1f} s + switching round {switching:4.2f} s = {total:5.1f} s;"
              f" back on the preferred uplink {back:.0f} s after it was mended")  # fmt: skip
    print(f"failure → traffic on the other uplink: median {statistics.median(totals):.1f} s,"
          f" worst {max(totals):.1f} s (bound: period + probe timeout = 65 s)")  # fmt: skip
    print(f"a bound probe gives up on a dead wire after {dead:.2f} s (ARP fails before the 5 s probe timeout)")
    print("NetworkManager's own connectivity check, next to kioskd's probe on the real daemon:")
    print("  benchmarks/uplink_failover_networkmanager.py")


if __name__ == "__main__":
    asyncio.run(main())
