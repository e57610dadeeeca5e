"""Confidential-entry latency on a private Xorg with video-dummy and Xorg's inputtest input devices (the
integration tests' server): from the press until the citizen's touchscreen is live ("Device Enabled" 1) *and* the
agent's output shows its curtain, through the device calls ``HandoverPolicy.set_confidential`` makes, in its order
(agent curtain, agent devices off, citizen mapped and on); and back. Next to the peer: a bare ``xinput enable`` of
the same device and a plain override-redirect window mapped over the agent's output. Prints p50/p99 over 30
presses each way; asserts nothing.

A watcher on its own X connection polls the device's property (XIGetProperty) and one pixel of the agent output."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the private Xorg and its input devices are the integration tests' own

from Xlib import X, display, error  # noqa: E402
from Xlib.ext import randr, xinput  # noqa: E402

from drivers.display.xrandr import CURTAIN_BACKGROUND, XrandrDisplays  # noqa: E402
from drivers.input.xinput import ENABLED, XinputInputs  # noqa: E402
from kioskd.clock import RealClock  # noqa: E402
from kioskd.hal import DriverContext  # noqa: E402
from tests.integration.inputtest_devices import Fake, config  # noqa: E402
from tests.integration.xorg_service import Pattern, running_xorg  # noqa: E402

PRESSES = 30
TIMEOUT = 5.0
PEER_COLOUR = (200, 0, 200)


class Watcher:
    """Waits until a device's "Device Enabled" and the picture at the agent output's position are as wanted."""

    def __init__(self, server: str, device: str) -> None:
        self.connection = display.Display(server)
        self.root = self.connection.screen().root
        self.enabled = self.connection.intern_atom(ENABLED)
        self.device = next(
            d.deviceid for d in self.connection.xinput_query_device(xinput.AllDevices).devices if d.name == device
        )

    def agent_at(self) -> tuple[int, int]:
        res = randr.get_screen_resources_current(self.root)
        for output in res.outputs:
            info = self.connection.xrandr_get_output_info(output, res.config_timestamp)
            if info.name == "DUMMY0" and info.crtc:
                crtc = self.connection.xrandr_get_crtc_info(info.crtc, res.config_timestamp)
                return crtc.x, crtc.y
        return -1, -1

    def live(self) -> bool:
        reply = self.connection.xinput_get_device_property(self.device, self.enabled, X.AnyPropertyType, 0, 1)
        return bool(reply.value[1][0]) if reply.type else False

    def shows(self, live: bool, colour: tuple[int, int, int]) -> bool:
        if self.live() != live:
            return False
        x, y = self.agent_at()
        try:
            image = self.root.get_image(x + 8, y + 8, 1, 1, X.ZPixmap, 0xFFFFFFFF)
        except error.XError:
            return False  # the screen is being resized
        b, g, r = image.data[0], image.data[1], image.data[2]
        return (r, g, b) == colour

    def wait(self, live: bool, colour: tuple[int, int, int], started: float) -> float:
        deadline = started + TIMEOUT
        while time.perf_counter() < deadline:
            if self.shows(live, colour):
                return time.perf_counter() - started
        raise TimeoutError(f"never saw the device {'on' if live else 'off'} with {colour} on the agent output")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label:<58} p50 {statistics.median(ms):6.1f} ms   p99 {percentile(ms, 0.99):6.1f} ms   max {max(ms):6.1f} ms"
    )


def peer(
    server: str, env: dict[str, str], watcher: Watcher, width: int, height: int
) -> tuple[list[float], list[float]]:
    """The peer: ``xinput enable`` and a plain window mapped over the agent's output (no layout change)."""
    xinput_tool = shutil.which("xinput") or "xinput"
    connection = display.Display(server)
    screen = connection.screen()
    colour = (PEER_COLOUR[0] << 16) | (PEER_COLOUR[1] << 8) | PEER_COLOUR[2]
    window = screen.root.create_window(
        0, 0, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
        override_redirect=True, background_pixel=colour,
    )  # fmt: skip
    on, off = [], []
    for _ in range(PRESSES):
        started = time.perf_counter()
        subprocess.run([xinput_tool, "enable", "citizen touch"], env=env, check=True)
        window.map()
        connection.sync()
        on.append(watcher.wait(True, PEER_COLOUR, started))
        started = time.perf_counter()
        subprocess.run([xinput_tool, "disable", "citizen touch"], env=env, check=True)
        window.unmap()
        connection.sync()
        off.append(watcher.wait(False, Pattern.COLOURS[0], started))
    connection.close()
    return on, off


async def measure(directory: Path, sockets: Path) -> None:
    fakes = [
        Fake("citizen touch", "PointerAbsolute", sockets / "touch"),
        Fake("citizen keyboard", "Keyboard", sockets / "ckbd"),
        Fake("agent mouse", "Pointer", sockets / "mouse"),
    ]
    with running_xorg(directory, config(fakes)) as xorg:
        xorg.plug("DUMMY1")

        def ctx(kind: str, driver: str, options: dict[str, object]) -> DriverContext:
            return DriverContext(
                kind=kind,  # type: ignore[arg-type]
                driver=driver,
                options=options,
                clock=RealClock(),
                emit=lambda event: None,
                runtime_dir=directory,
            )

        displays = XrandrDisplays(
            ctx("displays", "xrandr", {"display": xorg.display, "agent": "DUMMY0", "citizen": "DUMMY1"})
        )
        citizen = [{"name": "citizen touch"}, {"name": "citizen keyboard"}]
        inputs = XinputInputs(ctx("inputs", "xinput", {"display": xorg.display, "citizen": citizen}))
        await displays.start()
        await inputs.start()
        await displays.set_power(True)
        await displays.set_mirror(True)
        width, height = xorg.monitors()["DUMMY0"][:2]
        pattern = Pattern(xorg, width, height)
        watcher = Watcher(xorg.display, "citizen touch")
        on, off = [], []
        for _ in range(PRESSES):
            started = time.perf_counter()
            seen: list[float] = []
            thread = threading.Thread(
                target=lambda s=seen, t=started: s.append(watcher.wait(True, CURTAIN_BACKGROUND, t))
            )
            thread.start()
            await displays.set_agent_curtain(True)  # HandoverPolicy.set_confidential's order
            await inputs.set_enabled("agent", False)
            citizen_output = next(o for o in displays.state.outputs if o.role == "citizen")
            await inputs.map_citizen(citizen_output)
            await inputs.set_enabled("citizen", True)
            await asyncio.to_thread(thread.join)
            on.append(seen[0])
            started = time.perf_counter()
            await inputs.set_enabled("agent", True)  # its _end_confidential
            await inputs.set_enabled("citizen", False)
            await displays.set_agent_curtain(False)
            off.append(await asyncio.to_thread(watcher.wait, False, Pattern.COLOURS[0], started))
        await inputs.close()
        await displays.close()
        peer_on, peer_off = await asyncio.to_thread(peer, xorg.display, xorg.env, watcher, width, height)
        pattern.close()
        watcher.connection.close()

    print(f"confidential entry, video-dummy {width}x{height} per output, inputtest devices, {PRESSES} presses each way")
    report("kioskd: press -> citizen touch live + agent curtain shown", on)
    report("kioskd: end -> citizen touch off + agent's picture back", off)
    report("peer: bare xinput enable + window map", peer_on)
    report("peer: bare xinput disable + window unmap", peer_off)


def main() -> None:
    sockets = Path(tempfile.mkdtemp(prefix="kx-", dir="/tmp"))
    try:
        with tempfile.TemporaryDirectory(prefix="kioskd-bench-handover-") as directory:
            asyncio.run(measure(Path(directory), sockets))
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


if __name__ == "__main__":
    main()
