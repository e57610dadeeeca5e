"""A private PulseAudio server for the audio tests: its own HOME, runtime dir and cookie in the test's temp dir, null
sinks and sources as the van's devices, the native socket loaded last (once it exists, every device is there).

Stopped by its PID even when the test fails; a missing binary fails the test with its install command."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration import require


@dataclass(frozen=True)
class PulseServer:
    server: str  # unix:<socket>
    pid: int
    env: dict[str, str]  # for clients started by the test (pactl, pacat)
    log: Path

    def pactl(self, *args: str) -> str:
        done = subprocess.run(
            [require.binary("pactl", "pulseaudio-utils"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout.strip()


@contextmanager
def private_pulse(base: Path, devices: list[str]) -> Iterator[PulseServer]:
    """``devices``: module lines loaded before the socket, e.g. ``module-null-sink sink_name=kiosk_out``."""
    binary = require.binary("pulseaudio", "pulseaudio")
    base.mkdir(parents=True, exist_ok=True)
    (base / "run").mkdir(mode=0o700, exist_ok=True)
    (base / "state").mkdir(exist_ok=True)
    socket = base / "native"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"},
        "HOME": str(base),  # keeps ~/.config/pulse out of the real home
        "XDG_RUNTIME_DIR": str(base / "run"),
        "PULSE_RUNTIME_PATH": str(base / "run" / "pulse"),
        "PULSE_STATE_PATH": str(base / "state"),
        "PULSE_COOKIE": str(base / "cookie"),
    }
    command = [
        binary,
        "-n",
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--use-pid-file=no",
        "--realtime=no",
        "--high-priority=no",
        "--disallow-module-loading=no",
        "--log-target=stderr",
        *(f"--load={line}" for line in devices),
        f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
    ]
    log = base / "pulseaudio.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            if process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("pulseaudio did not create its socket within 10 s")
            time.sleep(0.01)
        if b"Failed to load module" in log.read_bytes():  # pulseaudio goes on without it: the test would lie
            raise RuntimeError(f"a device module did not load: {log.read_text()[-2000:]}")
        client = {**env, "PULSE_SERVER": f"unix:{socket}"}
        yield PulseServer(f"unix:{socket}", process.pid, client, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
