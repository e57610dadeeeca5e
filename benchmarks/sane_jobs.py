"""The ``scanner.sane`` driver's jobs (libsane in a fresh process of its own for each job, drivers/scanner/sane.py)
next to SANE's own ``scanimage`` (one process per scan) on SANE's ``test`` backend: one flatbed page per job at
75 dpi grey and at 300 dpi colour, alternating which runs first. Prints seconds per job of each and their
ratio (the driver's includes renewing libsane after the job: closing the handle, a new process, open and presets);
asserts nothing.

Run: ``.venv/bin/python benchmarks/sane_jobs.py [jobs]`` (needs sane-utils and libsane1, as ``make test`` does)."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.scanner.sane import SaneScanner  # noqa: E402
from kioskd.hal import ScanRequest  # noqa: E402
from tests.integration.sane_service import EventLog, sane_test_backend, scanner_context  # noqa: E402

SETTINGS = [(75, "gray", "Gray"), (300, "color", "Color")]


async def driver_jobs(runtime: Path, jobs: int, dpi: int, mode: str) -> list[float]:
    scanner = SaneScanner(scanner_context(runtime, EventLog(), device="test:0", udev_match={}))
    await scanner.start()
    times = []
    try:
        for _ in range(jobs):
            started = time.perf_counter()
            result = await scanner.scan(ScanRequest(source="flatbed", resolution=dpi, mode=mode))  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
            assert len(result.pages) == 1 and result.fault is None, result.fault
    finally:
        await scanner.close()
    return times


def scanimage_jobs(jobs: int, dpi: int, mode: str) -> list[float]:
    times = []
    for _ in range(jobs):
        started = time.perf_counter()
        subprocess.run(
            ["scanimage", "-d", "test:0", "--format=pnm", f"--resolution={dpi}", f"--mode={mode}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if shutil.which("scanimage") is None:
        sys.exit("scanimage is missing: apt-get install sane-utils")
    with tempfile.TemporaryDirectory() as folder, sane_test_backend(Path(folder)):
        print(f"{jobs} one-page flatbed jobs each, SANE's test backend (A4), alternating which runs first")
        for dpi, mode, sane_mode in SETTINGS:
            ours: list[float] = []
            theirs: list[float] = []
            for round_ in range(2):
                half = jobs // 2
                if round_ == 0:
                    ours += asyncio.run(driver_jobs(Path(folder), half, dpi, mode))
                    theirs += scanimage_jobs(half, dpi, sane_mode)
                else:
                    theirs += scanimage_jobs(jobs - half, dpi, sane_mode)
                    ours += asyncio.run(driver_jobs(Path(folder), jobs - half, dpi, mode))
            a, b = statistics.median(ours), statistics.median(theirs)
            print(
                f"{dpi:>4} dpi {mode:<5}: kioskd's driver {a * 1000:7.1f} ms/job (max {max(ours) * 1000:.0f}), "
                f"scanimage {b * 1000:7.1f} ms/job (max {max(theirs) * 1000:.0f}); ratio {a / b:.2f}"
            )


if __name__ == "__main__":
    main()
