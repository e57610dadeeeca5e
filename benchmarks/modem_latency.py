"""Latency from a ModemManager ``SignalQuality`` change (python-dbusmock on a private system bus) to the station's
snapshot carrying it on kioskd's API event stream (``/events``, server-sent events), p50/p99 over 200 changes,
next to the same change seen by a bare dbus-fast subscriber (the floor: D-Bus alone). Prints figures; asserts
nothing. Target: p99 ≤ 50 ms."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dbus  # noqa: E402
import httpx  # noqa: E402
from dbus_fast import Message, MessageType  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402

from kioskd.profile import SIM_PROFILE  # noqa: E402
from tests.integration.modem_service import MODEM, ModemManagerMock  # noqa: E402
from tests.integration.power_services import private_bus, stop_process  # noqa: E402

CHANGES = 200
SIM_MODEM = '[devices.modem]\ndriver = "sim"\noperator = "Orange F"\nsignal = 70\n'


def quality(value: int) -> Any:
    return dbus.Struct((dbus.UInt32(value), True), signature="ub")


def values() -> list[int]:
    """200 signal values, each different from the one before (and from the template's 70)."""
    return [1 + (i % 60) for i in range(CHANGES)]


class EventStream:
    """Reads kioskd's /events in a thread; ``wait_for(signal)`` returns the monotonic time the snapshot arrived."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()
        self.stop = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        transport = httpx.HTTPTransport(uds=str(self.socket_path))
        with (
            httpx.Client(transport=transport, base_url="http://kioskd", timeout=None) as client,
            client.stream("GET", "/events") as response,
        ):
            for line in response.iter_lines():
                if self.stop:
                    return
                if line.startswith("data: "):
                    arrived = time.monotonic()
                    signal = json.loads(line[6:])["modem"]["signal"]
                    with self.cond:
                        self.seen.setdefault(signal, arrived)
                        self.cond.notify_all()

    def forget(self, signal: int) -> None:
        with self.cond:
            self.seen.pop(signal, None)

    def wait_for(self, signal: int, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while signal not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"signal {signal} never reached /events")
                self.cond.wait(left)
            return self.seen[signal]


def start_kioskd(tmp: Path, address: str) -> tuple[subprocess.Popen[bytes], Path]:
    profile = tmp / "van.toml"
    text = SIM_PROFILE.read_text()
    assert SIM_MODEM in text, "profiles/sim.toml's modem table changed: update the benchmark"
    block = f'[devices.modem]\ndriver = "modemmanager"\nbus_address = "{address}"\nsignal_rate = 0\n'
    profile.write_text(text.replace(SIM_MODEM, block))
    runtime = tmp / "run"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "kioskd"), "--profile", str(profile), "--runtime-dir", str(runtime),
         "--state-dir", str(tmp / "state"), "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "kioskd.log").open("wb"),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (runtime / "api.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kioskd did not start: {(tmp / 'kioskd.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, runtime / "kioskd.sock"


def through_kioskd(mock: ModemManagerMock, stream: EventStream) -> list[float]:
    latencies = []
    for value in values():
        stream.forget(value)
        start = time.monotonic()
        mock.set(MODEM, SignalQuality=quality(value))
        latencies.append(stream.wait_for(value) - start)
    return latencies


def through_dbus_alone(mock: ModemManagerMock, address: str) -> list[float]:
    """The same changes seen by a bare dbus-fast client with a match rule: what D-Bus and the mock cost."""
    arrived: dict[int, float] = {}
    ready = threading.Event()
    cond = threading.Condition()
    done = threading.Event()

    async def listen() -> None:
        bus = await MessageBus(bus_address=address).connect()

        def on_message(msg: Message) -> None:
            if msg.message_type == MessageType.SIGNAL and msg.member == "PropertiesChanged":
                changed = msg.body[1]
                if "SignalQuality" in changed:
                    with cond:
                        arrived.setdefault(int(changed["SignalQuality"].value[0]), time.monotonic())
                        cond.notify_all()

        bus.add_message_handler(on_message)
        rule = "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"
        await bus.call(
            Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                    member="AddMatch", signature="s", body=[rule])
        )  # fmt: skip
        ready.set()
        await asyncio.to_thread(done.wait)
        bus.disconnect()

    thread = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    thread.start()
    ready.wait(10)
    latencies = []
    for value in values():
        with cond:
            arrived.pop(value, None)
        start = time.monotonic()
        mock.set(MODEM, SignalQuality=quality(value))
        with cond:
            while value not in arrived:
                cond.wait(5)
            latencies.append(arrived[value] - start)
    done.set()
    thread.join(5)
    return latencies


def figures(name: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)]
    print(f"{name:<44} n={len(ms)}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {ms[-1]:6.2f} ms")


def main() -> None:
    with private_bus() as bus, tempfile.TemporaryDirectory(prefix="kioskd-modem-bench-") as tmp:
        mock = ModemManagerMock(bus)
        mock.add_modem()
        proc, socket_path = start_kioskd(Path(tmp), bus.address)
        try:
            stream = EventStream(socket_path)
            mock.set(MODEM, SignalQuality=quality(99))
            stream.wait_for(99, timeout=30)  # the modem is followed and the stream is open
            dbus_alone = through_dbus_alone(mock, bus.address)
            kioskd = through_kioskd(mock, stream)
            stream.stop = True
        finally:
            stop_process(proc)
            mock.close()
    print(f"ModemManager SignalQuality change → observer ({CHANGES} changes, {os.cpu_count()} CPUs)")
    figures("bare dbus-fast subscriber (D-Bus floor)", dbus_alone)
    figures("kioskd /events (driver → station → SSE)", kioskd)
    print("target: p99 ≤ 50 ms on kioskd /events")


if __name__ == "__main__":
    main()
