"""Time from a dead uplink (carrier up, nothing passes) to the van's traffic leaving by the other one, on Debian's
real NetworkManager: kioskd's probe (the profile's defaults: every 60 s, 5 s timeout) next to NetworkManager's own
connectivity check (its ``[connectivity]`` setting, which puts a penalty on the default route of a link that fails
it), on the same two veth links in NetworkManager's namespace (``tests/integration/network_service.py``).

kioskd runs as a real station on a manual clock inside that namespace (a child process), the dead link is killed
at a random moment of the probe period, and "moved" means the namespace's route to the Internet leaves by the other
link. NetworkManager's check runs on its own timer in real time, so its trials take real minutes; it is run with
``interval`` = kioskd's period (60 s) to compare like with like, its default being 300 s. Prints figures; asserts
nothing. Needs root, ``network-manager`` and ``dnsmasq-base``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kioskd.profile import SIM_PROFILE, parse_profile  # noqa: E402
from tests.integration.modem_service import ModemManagerMock  # noqa: E402
from tests.integration.network_service import PROBE_PORT, NetworkManagerDaemon  # noqa: E402
from tests.integration.power_services import private_bus  # noqa: E402

TRIALS_KIOSKD = 5
TRIALS_NM = 3
PERIOD = 60  # kioskd's default probe period, and NetworkManager's check interval here (its default: 300 s)


def version() -> str:
    return subprocess.run(["NetworkManager", "--version"], capture_output=True, text=True).stdout.strip()


def route_dev(far_address: str) -> str:
    """Inside the namespace: the link the traffic to the Internet (the far address) leaves by."""
    words = subprocess.run(["ip", "route", "get", far_address], capture_output=True, text=True).stdout.split()
    return words[words.index("dev") + 1] if "dev" in words else ""


def both_up(station: Any, first: str, far_address: str) -> bool:
    """Both uplinks seen active by the station (not before its backend published them) and the route on the first."""
    uplinks = station.state.modem.uplinks
    return len(uplinks) == 2 and all(u.active for u in uplinks) and route_dev(far_address) == first


async def until(condition: Any, within: float, step: float = 0.05) -> float | None:
    """Real seconds until ``condition()`` holds, None after ``within``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > within:
            return None
        await asyncio.sleep(step)
    return time.monotonic() - began


# --------------------------------------------------------------------------------------- kioskd, in the namespace
async def station_trials(
    address: str, links: list[str], far_address: str, host_ns: str, kill: list[list[str]], phases: list[float]
) -> None:
    """In NetworkManager's namespace: one station per trial; a JSON line per trial on stdout."""
    from tests.conftest import make_rig

    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = "directory"
    data["devices"]["modem"] = {
        "driver": "networkmanager", "bus_address": address, "modem_bus_address": address, "reconnect": 0.2,
        "uplinks": [{"name": "mairie", "kind": "ethernet", "interface": links[0]},
                    {"name": "cable", "kind": "ethernet", "interface": links[1]}],
    }  # fmt: skip
    # every timing at its default: only the probe's target is this bench's
    data["connectivity"] = {"probe": "http", "probe_url": f"http://{far_address}:{PROBE_PORT}/", "probe_status": 200}
    profile = parse_profile(data, "bench-profile.toml")

    def host(command: list[str]) -> None:  # in the test's namespace, where the links' far ends are
        subprocess.run(["nsenter", f"--net={host_ns}", *command], check=True, capture_output=True)

    def route() -> str:
        return route_dev(far_address)

    for phase in phases:
        with tempfile.TemporaryDirectory(prefix="kioskd-bench-") as tmp:
            rig = await make_rig(Path(tmp), profile)
            try:
                ready = await until(partial(both_up, rig.station, links[0], far_address), 90)
                assert ready is not None, "the links did not come up"
                await rig.clock.advance(0)
                await rig.station.idle()
                await rig.clock.advance(phase)
                host(kill[0])  # the link dies: carrier up, nothing comes back
                await rig.clock.advance(PERIOD - rig.clock.monotonic() - 0.01)
                await rig.station.idle()
                assert route() == links[0], "moved before the next probe"
                began = time.monotonic()
                await rig.clock.advance(0.02)  # the next probe round
                await rig.station.idle()
                outcomes = [(u.name, u.outcome) for u in rig.station.state.connectivity.uplinks]
                moved = await until(lambda: route() == links[1], 30)
                switching = (time.monotonic() - began) if moved is not None else None
                host(kill[1])
                back = 0
                while rig.station.state.connectivity.uplink != "mairie" and back < 1000:
                    await rig.clock.advance(1)
                    await rig.station.idle()
                    back += 1
                await until(lambda: route() == links[0], 30)
                print(json.dumps({"left": PERIOD - phase, "switching": switching, "back": back, "outcomes": outcomes}),
                      flush=True)  # fmt: skip
            finally:
                await rig.station.close()
                for _, device in rig.devices.all():
                    await device.close()


def kioskd_trials(nm: NetworkManagerDaemon, address: str) -> list[dict[str, Any]]:
    phases = [random.Random(21 + i).uniform(0, PERIOD) for i in range(TRIALS_KIOSKD)]
    code = (
        "import asyncio, json, sys; from benchmarks.uplink_failover_networkmanager import station_trials; "
        "asyncio.run(station_trials(*json.loads(sys.argv[1])))"
    )
    kill = [nm.kill_command(0), nm.kill_command(0, dead=False)]
    args = json.dumps([address, nm.links, nm.far_address, f"/proc/{os.getpid()}/ns/net", kill, phases])
    done = subprocess.run(
        ["ip", "netns", "exec", nm.namespace, sys.executable, "-c", code, args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"the station's trials failed:\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------------- NetworkManager's own check
async def networkmanager_trials(nm: NetworkManagerDaemon) -> list[tuple[float | None, float | None]]:
    """(seconds from the link's death until the route moved, seconds from its mending until it came back) per
    trial, the link killed at a random moment of NetworkManager's own timer; None: not within three intervals."""
    for i, (name, link) in enumerate(zip(("mairie", "cable"), nm.links, strict=True)):
        nm.nmcli("connection", "add", "type", "ethernet", "ifname", link, "con-name", f"nm-{name}",
                 "ipv4.route-metric", str(100 * (i + 1)), "ipv6.method", "disabled")  # fmt: skip

    def full() -> bool:
        return nm.nmcli("-g", "CONNECTIVITY", "general", check=False).strip() == "full"

    def via(n: int) -> bool:
        return nm.default_route() == nm.links[n]

    assert await until(lambda: via(0) and full(), 120, 0.5) is not None, "NetworkManager's links did not come up"
    results = []
    for i in range(TRIALS_NM):
        await asyncio.sleep(random.Random(50 + i).uniform(0, PERIOD))
        nm.kill(0)
        moved = await until(lambda: via(1), 3 * PERIOD, 0.2)
        nm.mend(0)
        back = await until(lambda: via(0), 3 * PERIOD, 0.2) if moved is not None else None
        results.append((moved, back))
        await until(full, 3 * PERIOD, 0.5)
    return results


def print_station(station: list[dict[str, Any]]) -> float | None:
    """kioskd's figures; their median (None when the traffic never moved)."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"dead uplink (carrier up, nothing passes) → traffic on the other link, Debian's NetworkManager {version()}")
    print(f"kioskd, {len(station)} trials, defaults (probe every {PERIOD} s, 5 s timeout), the link killed at random:")
    totals = []
    for t in station:
        total = None if t["switching"] is None else t["left"] + t["switching"]
        totals.append(total)
        shown = "did not move" if total is None else f"{total:5.1f} s"
        print(f"  next probe in {t['left']:5.1f} s + round and NetworkManager's Reapply "
              f"{t['switching'] if t['switching'] is not None else float('nan'):4.2f} s = {shown};"
              f" back {t['back']} s after the link was mended")  # fmt: skip
    moved = [t for t in totals if t is not None]
    if moved:
        print(f"  median {statistics.median(moved):.1f} s, worst {max(moved):.1f} s (bound: period + timeout = 65 s)")
    return statistics.median(moved) if moved else None


async def main() -> None:
    with private_bus() as bus:
        mm = ModemManagerMock(bus)
        try:
            nm = NetworkManagerDaemon(bus, links=2)
            try:
                station = kioskd_trials(nm, bus.address)
            finally:
                nm.close()
            kioskd_median = print_station(station)
            nm = NetworkManagerDaemon(bus, links=2, check_interval=PERIOD)
            try:
                own = await networkmanager_trials(nm)
            finally:
                nm.close()
        finally:
            mm.close()
    print(f"NetworkManager alone, {len(own)} trials, [connectivity] interval={PERIOD} (its default is 300):")
    for after, back in own:
        print(f"  route moved after {'did not within 3 intervals' if after is None else f'{after:5.1f} s'};"
              f" back {'-' if back is None else f'{back:5.1f} s'} after the link was mended")  # fmt: skip
    nm_moved = [after for after, _ in own if after is not None]
    if nm_moved and kioskd_median:
        median = statistics.median(nm_moved)
        print(f"  median {median:.1f} s: {median / kioskd_median:.2f} × kioskd's median")


if __name__ == "__main__":
    asyncio.run(main())
