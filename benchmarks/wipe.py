"""The wipe's cost: a session with 50 scans (300 dpi A4 JPEG pages) and a Chromium profile that visited a page,
from "next" to a verified wipe (the session app's grace excluded: no app runs), median of 20, next to `rm -rf`
of an identical tree on the same kind of storage. Prints figures; asserts nothing. Run as root for the tmpfs case.

Usage: .venv/bin/python benchmarks/wipe.py [--runs 20]"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

from kioskd.bus import EventBus
from kioskd.clock import RealClock
from kioskd.hal.loader import build_devices
from kioskd.profile import SIM_PROFILE, parse_profile
from kioskd.session import Sessions
from kioskd.session.workspace import create


def scan_page() -> bytes:
    """One 300 dpi A4 page of 'text' as a JPEG (quality 85), like the scanner pipeline writes."""
    page = np.full((3508, 2480), 245, np.uint8)
    rng = np.random.default_rng(1)
    for row in range(150, 3350, 45):
        page[row : row + 14, 150 : 150 + int(rng.integers(800, 2150))] = 30
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return jpeg.tobytes()


def chromium_profile(into: Path) -> None:
    """A real Chromium profile that visited a page (cookies, local storage, cache)."""
    page = into.parent / "page.html"
    page.write_text("<script>document.cookie='a=1';localStorage.setItem('k','v')</script><p>démarche</p>")
    subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={into}", "--dump-dom", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def populate(workspace: Path, jpeg: bytes, browser: Path) -> None:
    for n in range(50):
        (workspace / "scans" / f"scan-{n:02d}.jpg").write_bytes(jpeg)
    shutil.copytree(browser, workspace / "browser", dirs_exist_ok=True, symlinks=True)


def tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


async def measure(kind: str, runs: int, jpeg: bytes, browser: Path, base: Path) -> tuple[list[float], list[float]]:
    data = tomllib.loads(SIM_PROFILE.read_text())
    data["station"]["workspace"] = kind
    profile = parse_profile(data, "bench")
    clock = RealClock()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    devices = build_devices(profile, clock, bus.publish_threadsafe, base / "run")
    for _, device in devices.all():
        await device.start()
    sessions = Sessions(base / "run" / "sessions", base / "state", devices, clock, profile.station)
    wipes, removes = [], []
    for _ in range(runs):
        session = await sessions.open()
        populate(session.workspace.root, jpeg, browser)
        start = time.perf_counter()
        outcome = await sessions.wipe(session.id, "next")
        wipes.append(time.perf_counter() - start)
        assert outcome.verified, outcome.failed_handlers()
        # the same tree, on the same kind of storage, removed by rm -rf
        twin = await create(base / "run" / "twin", kind, "1G")
        populate(twin.root, jpeg, browser)
        start = time.perf_counter()
        subprocess.run(["rm", "-rf", str(twin.root / "scans"), str(twin.root / "browser")], check=True)  # noqa: ASYNC221 - timed on purpose
        removes.append(time.perf_counter() - start)
        if kind == "tmpfs":
            subprocess.run(["umount", str(twin.root)], check=True)  # noqa: ASYNC221
        shutil.rmtree(twin.root)
    for _, device in devices.all():
        await device.close()
    return wipes, removes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    jpeg = scan_page()
    with tempfile.TemporaryDirectory(prefix="kw-bench-") as d:
        base = Path(d)
        browser = base / "chromium-profile"
        chromium_profile(browser)
        files, size = tree_size(browser)
        print(f"session: 50 scans × {len(jpeg) / 1024:.0f} KiB + Chromium profile ({files} files, {size / 1e6:.1f} MB)")
        kinds = ["directory", "tmpfs"] if os.geteuid() == 0 else ["directory"]
        for kind in kinds:
            wipes, removes = asyncio.run(measure(kind, args.runs, jpeg, browser, base / kind))
            w, r = statistics.median(wipes), statistics.median(removes)
            print(
                f"{kind:>9}: wipe to verified median {w * 1000:7.1f} ms (min {min(wipes) * 1000:.1f}), "
                f"rm -rf median {r * 1000:6.1f} ms, ratio {w / r:5.2f}×"
            )


if __name__ == "__main__":
    main()
