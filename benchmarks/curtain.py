"""Privacy-curtain latency of the xrandr backend on a private Xorg with video-dummy (the integration tests' server):
from the press (``set_curtain`` called) until the citizen output's CRTC shows the curtain's pixels, and back until it
shows the agent's picture again; next to a bare ``xrandr`` move of the same output (the peer: the layout change alone,
nothing drawn). Prints p50/p99 over 40 presses each way; asserts nothing. The goal is 200 ms.

A watcher on its own X connection polls the citizen CRTC's rectangle (RandR) and one pixel of the framebuffer there."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the private Xorg is the integration tests' own

from Xlib import X, display, error  # noqa: E402
from Xlib.ext import randr  # noqa: E402

from drivers.display.xrandr import CURTAIN_BACKGROUND, XrandrDisplays  # noqa: E402
from kioskd.clock import RealClock  # noqa: E402
from kioskd.hal import DriverContext  # noqa: E402
from tests.integration.xorg_service import Pattern, running_xorg  # noqa: E402

PRESSES = 40
TIMEOUT = 5.0


class Watcher:
    """Waits until the citizen output sits at ``x`` and shows ``colour`` a few pixels inside its rectangle."""

    def __init__(self, name: str, server: str) -> None:
        self.connection = display.Display(server)
        self.root = self.connection.screen().root
        self.name = name

    def shows(self, x: int, colour: tuple[int, int, int]) -> bool:
        res = randr.get_screen_resources_current(self.root)
        for output in res.outputs:
            info = self.connection.xrandr_get_output_info(output, res.config_timestamp)
            if info.name != self.name or not info.crtc:
                continue
            crtc = self.connection.xrandr_get_crtc_info(info.crtc, res.config_timestamp)
            if crtc.x != x:
                return False
            try:
                image = self.root.get_image(crtc.x + 8, crtc.y + 8, 1, 1, X.ZPixmap, 0xFFFFFFFF)
            except error.XError:
                return False  # the screen is being resized
            b, g, r = image.data[0], image.data[1], image.data[2]
            return (r, g, b) == colour
        return False

    def wait(self, x: int, colour: tuple[int, int, int], started: float) -> float:
        deadline = started + TIMEOUT
        while time.perf_counter() < deadline:
            if self.shows(x, colour):
                return time.perf_counter() - started
        raise TimeoutError(f"{self.name} never showed {colour} at x={x}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label:<46} p50 {statistics.median(ms):6.1f} ms   p99 {percentile(ms, 0.99):6.1f} ms   max {max(ms):6.1f} ms"
    )


def bare_xrandr(
    env: dict[str, str], watcher: Watcher, width: int, agent_colour: tuple[int, int, int]
) -> tuple[list[float], list[float]]:
    """The peer: the same move by xrandr alone, nothing drawn (the citizen side shows the bare, black root)."""
    beside, back = [], []
    for _ in range(PRESSES):
        started = time.perf_counter()
        subprocess.run(["xrandr", "--output", "DUMMY1", "--pos", f"{width}x0"], env=env, check=True)
        beside.append(watcher.wait(width, (0, 0, 0), started))
        started = time.perf_counter()
        subprocess.run(["xrandr", "--output", "DUMMY1", "--pos", "0x0"], env=env, check=True)
        back.append(watcher.wait(0, agent_colour, started))
    return beside, back


async def measure(directory: Path) -> None:
    with running_xorg(directory) as xorg:
        xorg.plug("DUMMY1")
        ctx = DriverContext(
            kind="displays",
            driver="xrandr",
            options={"display": xorg.display, "agent": "DUMMY0", "citizen": "DUMMY1"},
            clock=RealClock(),
            emit=lambda event: None,
            runtime_dir=directory,
        )
        backend = XrandrDisplays(ctx)
        await backend.start()
        await backend.set_power(True)
        await backend.set_mirror(True)
        width, height = xorg.monitors()["DUMMY0"][:2]
        pattern = Pattern(xorg, width, height)
        agent_colour = Pattern.COLOURS[0]
        watcher = Watcher("DUMMY1", xorg.display)
        on, off, calls = [], [], []
        for _ in range(PRESSES):
            started = time.perf_counter()
            seen: list[float] = []
            thread = threading.Thread(
                target=lambda s=seen, t=started: s.append(watcher.wait(width, CURTAIN_BACKGROUND, t))
            )
            thread.start()
            await backend.set_curtain(True)
            calls.append(time.perf_counter() - started)
            await asyncio.to_thread(thread.join)
            on.append(seen[0])
            started = time.perf_counter()
            await backend.set_curtain(False)
            off.append(await asyncio.to_thread(watcher.wait, 0, agent_colour, started))
        await backend.close()

        peer_on, peer_off = await asyncio.to_thread(bare_xrandr, xorg.env, watcher, width, agent_colour)
        pattern.close()
        watcher.connection.close()

    print(f"privacy curtain, video-dummy, {width}x{height} per output, {PRESSES} presses each way")
    report("kioskd: press -> curtain on the citizen output", on)
    report("kioskd: set_curtain(True) returned", calls)
    report("kioskd: press -> agent's picture back", off)
    report("peer: bare xrandr move beside (nothing drawn)", peer_on)
    report("peer: bare xrandr move back onto the mirror", peer_off)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-curtain-") as directory:
        asyncio.run(measure(Path(directory)))


if __name__ == "__main__":
    main()
