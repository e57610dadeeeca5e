"""The button's latency on gpiozero's MockFactory: from the release of a short press on the pin (driven from another
thread, like gpiozero's) to ``ButtonPressed`` delivered on the daemon's event bus, p50/p99, with and without the
debounce, next to gpiozero's own ``Button.when_released`` callback (no hand-over to the loop, no debounce). Prints
figures; asserts nothing.

Usage: .venv/bin/python benchmarks/button_latency.py [--presses 100]"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gpiozero import Button, Device

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the mock pins are the integration tests' own

from drivers.button.gpio import GpioButton  # noqa: E402
from kioskd.bus import EventBus  # noqa: E402
from kioskd.clock import RealClock  # noqa: E402
from kioskd.hal import ButtonPressed, DriverContext, Event  # noqa: E402
from tests.integration.gpio_pins import mock_pins  # noqa: E402

PIN = 17


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.3f} ms   p99 {p99:7.3f} ms   (n={len(ms)})"


def _thumb(pin: Any, hold: float, stamp: list[float], released: threading.Event) -> None:
    """A short press from another thread (gpiozero calls back on its own): held long enough to count, far from
    the hold time; ``stamp`` gets the moment of the release."""
    pin.drive_low()
    time.sleep(hold)
    stamp.append(time.perf_counter())
    pin.drive_high()
    released.set()


async def kioskd_latency(presses: int, bounce_time: float) -> list[float]:
    loop = asyncio.get_running_loop()
    bus = EventBus()
    bus.bind(loop)
    received: asyncio.Queue[float] = asyncio.Queue()

    def on_press(event: Event) -> None:
        received.put_nowait(time.perf_counter())

    bus.subscribe(on_press, ButtonPressed)
    options = {"pin": PIN, "bounce_time": bounce_time, "hold_time": 3.0}
    with tempfile.TemporaryDirectory() as runtime:
        ctx = DriverContext("button", "gpio", options, RealClock(), bus.publish_threadsafe, Path(runtime))
        button = GpioButton(ctx)
        await button.start()
        pin = Device.pin_factory.pin(PIN)
        samples: list[float] = []
        try:
            for _ in range(presses):
                released = threading.Event()
                stamp: list[float] = []
                threading.Thread(target=_thumb, args=(pin, bounce_time + 0.02, stamp, released)).start()
                got = await asyncio.wait_for(received.get(), 5)
                await asyncio.to_thread(released.wait)
                samples.append(got - stamp[0])
        finally:
            await button.close()
    return samples


def gpiozero_latency(presses: int) -> list[float]:
    button = Button(PIN, hold_time=3.0)
    pin = Device.pin_factory.pin(PIN)
    got: list[float] = []
    button.when_released = lambda: got.append(time.perf_counter())
    samples = []
    try:
        for _ in range(presses):
            pin.drive_low()
            time.sleep(0.002)
            start = time.perf_counter()
            pin.drive_high()
            while len(got) <= len(samples):
                time.sleep(0.0001)
            samples.append(got[-1] - start)
    finally:
        button.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100)
    args = parser.parse_args()
    with mock_pins() as pins:
        print(f"button latency, release of a short press -> event ({args.presses} presses each)")
        for bounce in (0.0, 0.05):
            samples = asyncio.run(kioskd_latency(args.presses, bounce))
            print(f"  kioskd gpio, bounce_time {bounce:4.2f} s -> ButtonPressed on the bus:  {percentiles(samples)}")
            pins.reset()
        peer = percentiles(gpiozero_latency(args.presses))
        print(f"  gpiozero Button.when_released (peer, same thread):        {peer}")


if __name__ == "__main__":
    main()
