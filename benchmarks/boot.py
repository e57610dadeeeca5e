"""What the station adds to a bare boot, in the virtual van: power on → kioskd READY and → both screens showing the
station, next to the same disk booted to multi-user.target with kioskd and its screens masked (systemd-analyze in
the guest, both boots in one qemu run); the disk's size; its build time warm and unchanged (``--cold`` also builds
it from an empty cache: every package downloaded again). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vm.conftest import CACHE, PROFILE, build_disk, disk_path, one_van_at_a_time  # noqa: E402
from tests.vm.virtual_van import PANEL_BLUE, VanError, VirtualVan, kvm_works, running, share  # noqa: E402

STATION_UNITS = "kioskd.service kioskd-desktop.service pulseaudio-system.service"


def timed_build(*extra: str, cache: Path = CACHE, out: Path | None = None) -> tuple[float, dict[str, object]]:
    command = [
        sys.executable, str(ROOT / "image-build/build.py"), "--profile", str(PROFILE), "--format", "disk",
        "--guest-agent", "--out", str(out or disk_path()), "--cache", str(cache), "--json", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.monotonic() - started, json.loads(result.stdout.strip().splitlines()[-1])


def analyze(van: VirtualVan) -> dict[str, float]:
    """``systemd-analyze``'s split of the boot (firmware, loader, kernel, initrd, userspace) and when the units of
    interest became active, in seconds since the kernel started."""
    text = van.sh("systemd-analyze time")
    figures = {
        name: _seconds(value) for value, name in re.findall(r"([\d.]+(?:min|ms|s)(?: [\d.]+(?:ms|s))?) \((\w+)\)", text)
    }
    for unit in ("multi-user.target", "kioskd.service", "kioskd-desktop.service"):
        show = van.unit(unit, "ActiveEnterTimestampMonotonic")
        stamp = int(show.get("ActiveEnterTimestampMonotonic", "0") or 0)
        if stamp:
            figures[unit] = stamp / 1e6
    return figures


def _seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(min|ms|s)", value):
        total += float(number) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return total


def screens_show_station(van: VirtualVan, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        agent, citizen = van.screendump(0), van.screendump(1)
        if share(agent, PANEL_BLUE, (0, 0, agent.width, 60)) > 0.5 and agent.tobytes() == citizen.tobytes():
            return van.since_power_on()
        time.sleep(1)
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also build from an empty cache (downloads everything)")
    args = parser.parse_args()

    summary = build_disk()
    print(f"disk: {disk_path()} ({'built' if summary['built'] else 'up to date'})")
    warm, _ = timed_build("--force")
    unchanged, _ = timed_build()
    print(f"build: warm (mkosi's caches, everything else rebuilt) {warm:.0f} s; unchanged inputs {unchanged:.1f} s")
    if args.cold:
        with tempfile.TemporaryDirectory(prefix="kioskd-cold-", dir=CACHE) as cold_cache:
            cold, _ = timed_build(cache=Path(cold_cache), out=Path(cold_cache) / "cold.raw")
        print(f"build: cold (empty cache: packages downloaded, mkosi from scratch) {cold:.0f} s")
    disk = disk_path()
    allocated = os.stat(disk).st_blocks * 512
    print(f"disk: {disk.stat().st_size / 2**30:.1f} GiB sparse, {allocated / 1e9:.2f} GB allocated")
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True).stdout)
    for part in table["partitiontable"]["partitions"]:
        print(f"  {part.get('name', '?'):12} {part['size'] * 512 / 2**20:8.0f} MiB")

    accel = "kvm" if kvm_works() else "tcg"
    with (
        one_van_at_a_time(print),
        tempfile.TemporaryDirectory(prefix="boot-bench-") as tmp,
        running(disk, Path(tmp), accel) as van,
    ):
        van.wait_active("kioskd.service", 900)
        ready = van.since_power_on()
        lit = screens_show_station(van, 400)
        station = analyze(van)
        # the same disk without the station: masked in this qemu run's snapshot, then a reboot
        first = van.sh("cat /proc/sys/kernel/random/boot_id").strip()
        van.sh(f"systemctl mask {STATION_UNITS} && systemctl reboot --no-block")
        van.guest().reset()

        def rebooted() -> bool:
            try:
                return van.sh("cat /proc/sys/kernel/random/boot_id", timeout=30).strip() != first
            except (VanError, OSError, ValueError, ConnectionError):  # the agent is gone while the guest reboots
                van.guest().reset()
                return False

        van.wait_for(rebooted, 900, "the bare boot", period=3.0)
        van.wait_active("multi-user.target", 600)
        bare = analyze(van)

    print(f"\nvirtual van ({accel}, host wall clock from qemu's start):")
    print(f"  power on → kioskd READY (guest agent)           {ready:6.1f} s")
    print(f"  power on → both screens show the station (QMP)   {lit:6.1f} s")
    print("systemd-analyze in the guest (s)      with the station   bare (kioskd, X, sound masked)")
    for key in ("firmware", "loader", "kernel", "initrd", "userspace", "multi-user.target", "kioskd.service",
                "kioskd-desktop.service"):  # fmt: skip
        print(f"  {key:34} {station.get(key, float('nan')):10.1f}        {bare.get(key, float('nan')):10.1f}")
    added = station.get("multi-user.target", 0) - bare.get("multi-user.target", 0)
    print(f"the station adds {added:.1f} s to the boot to multi-user.target; kioskd READY "
          f"{station.get('kioskd.service', float('nan')):.1f} s after the kernel started")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
