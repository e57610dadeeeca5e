"""The citizen's USB stick through the FUSE backend (``drivers.media.fuse``) on image files: the time from plug (the
backend told a stick is there) to "ready to read" (mounted read-only, its root listed), and the copy of 20 scans to
the stick (remount read-write, copy, fsync, unmount, sync, remount read-only), next to ``cp`` + ``sync`` of the same
files to the same image mounted the same way (the same driver, read-write, as the same user). Prints medians;
asserts nothing.

Usage: .venv/bin/python benchmarks/media.py [--runs 5] [--fs vfat ntfs] [--scan-kb 400]"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.media.fuse import FuseMedia  # noqa: E402
from kioskd.clock import RealClock  # noqa: E402
from kioskd.hal import DriverContext, Event  # noqa: E402
from tests.integration.stick_images import make_image  # noqa: E402


async def one_run(fs: str, scans: list[Path], work: Path) -> tuple[float, float, float]:
    image = make_image(work / f"stick-{fs}.img", fs, 128)
    events: list[Event] = []
    ctx = DriverContext("media", "fuse", {"udev": False}, RealClock(), events.append, work)
    media = FuseMedia(ctx)
    await media.start()
    target = work / "ws" / "cle-1"
    target.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    media.arrive("b-1", image)
    await media.mount("b-1", target, "bench", None)
    os.listdir(target)
    ready = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = await media.export("b-1", scans)
    export = time.perf_counter() - t0
    assert result.fault is None and result.files == len(scans), result
    # the peer: the same driver and user, read-write, `cp` then `sync`, then the unmount that flushes it
    await media.eject("b-1")
    volume = media._volumes["b-1"]
    volume.target = target
    target.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    await asyncio.to_thread(media._spawn, volume, True)
    (target / "cp").mkdir()
    await asyncio.to_thread(subprocess.run, ["cp", *map(str, scans), str(target / "cp")], check=True)
    await asyncio.to_thread(subprocess.run, ["sync"], check=True)
    await asyncio.to_thread(media._unmount, volume, False)
    peer = time.perf_counter() - t0
    await media.close()
    image.unlink()
    return ready, export, peer


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fs", nargs="*", default=["vfat", "ntfs"])
    parser.add_argument("--scan-kb", type=int, default=400, help="size of each of the 20 scans")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        (work / "scans").mkdir()
        scans = []
        for n in range(20):
            path = work / "scans" / f"scan-{n:02d}.pdf"
            path.write_bytes(b"%PDF-1.4 " + os.urandom(opts.scan_kb * 1024))
            scans.append(path)
        total = sum(p.stat().st_size for p in scans) / 1e6
        print(f"20 scans, {total:.1f} MB; {opts.runs} runs per file system; medians")
        print(f"{'fs':6} {'plug→ready':>11} {'export':>9} {'MB/s':>6} {'cp+sync':>9} {'MB/s':>6} {'ratio':>6}")
        for fs in opts.fs:
            runs = [await one_run(fs, scans, work) for _ in range(opts.runs)]
            ready, export, peer = (statistics.median(r[i] for r in runs) for i in range(3))
            print(
                f"{fs:6} {ready * 1000:9.0f}ms {export:8.2f}s {total / export:6.1f} {peer:8.2f}s {total / peer:6.1f}"
                f" {export / peer:6.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
