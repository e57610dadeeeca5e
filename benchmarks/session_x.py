"""What the session app's nested X server costs, on the display tests' private Xorg (video-dummy, MIT-SHM off as on
the station): the real Chromium started through image-build/station/session-x with ``--nested`` (Xephyr, as the
virtual van's profile) next to the peer, the same Chromium straight on the server (what the image had before).
Per start: the app's window mapped, its page on screen, and "kiosk" typed → the page's answer on screen; then
Xephyr's resident memory. Prints p50/max over a few starts of each; asserts nothing.

    .venv/bin/python benchmarks/session_x.py [--starts 5]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the private Xorg and the session's door are the integration tests' own

from Xlib import display  # noqa: E402

from tests.integration.session_x_service import (  # noqa: E402
    BLUE,
    NO_SHM,
    YELLOW,
    app_window,
    forget_extension_events,
    start_session,
    stop_session,
    type_keys,
    wait_colour,
)  # fmt: skip
from tests.integration.xorg_service import running_xorg  # noqa: E402


def xephyr_rss_kib(session: int) -> int:
    """Resident memory of the Xephyr under ``session`` (its process group), in KiB; 0 when there is none."""
    listing = subprocess.run(["ps", "-o", "rss=,comm=", "-g", str(session)], capture_output=True, text=True).stdout
    return sum(int(line.split()[0]) for line in listing.splitlines() if line.split()[1:] == ["Xephyr"])


def one_start(nested: bool, work: Path) -> tuple[float, float, float, int]:
    forget_extension_events()  # each start is a new server: python-xlib's shared event table
    with running_xorg(work, NO_SHM) as xorg:
        connection = display.Display(xorg.display)
        started = time.monotonic()
        session = start_session(xorg, work, nested=nested)
        log = work / "session.log"
        try:
            window = None
            while window is None:
                if session.process.poll() is not None or time.monotonic() - started > 120:
                    raise SystemExit(f"no app window: {log.read_text()[-1500:]}")
                window = app_window(connection)
                time.sleep(0.02)
            mapped = time.monotonic() - started
            wait_colour(xorg, YELLOW, 120, "the page", log, period=0.05)
            shown = time.monotonic() - started
            time.sleep(1.0)  # the page settled: the figure below is the keys' way, not the start's
            typed = time.monotonic()
            type_keys(connection, window, "kiosk")
            wait_colour(xorg, BLUE, 30, "the canary", log, period=0.02)
            answered = time.monotonic() - typed
            rss = xephyr_rss_kib(session.process.pid)
        finally:
            stop_session(session)
            connection.close()
    return mapped, shown, answered, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    print(f"session app start, {args.starts} starts each (seconds: p50 / max)")
    for nested, name in ((True, "session-x --nested (Xephyr)"), (False, "peer: Chromium on the server")):
        figures = []
        for _ in range(args.starts):
            with tempfile.TemporaryDirectory(prefix="kbench-sx-") as work:
                figures.append(one_start(nested, Path(work)))
        columns = list(zip(*figures, strict=True))
        line = "  ".join(
            f"{label} {statistics.median(values):.2f} / {max(values):.2f}"
            for label, values in zip(("window", "page", "keys→page"), columns[:3], strict=True)
        )
        rss = f"  Xephyr RSS {statistics.median(columns[3]) / 1024:.1f} MiB" if nested else ""
        print(f"{name:32} {line}{rss}")


if __name__ == "__main__":
    main()
