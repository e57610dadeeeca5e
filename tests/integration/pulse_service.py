"""A private PulseAudio server for the audio tests: its own HOME, runtime dir and cookie in the test's temp dir, null
sinks and sources as the van's devices, the native socket loaded last (once it exists, every device is there).

Stopped by its PID even when the test fails; a missing binary fails the test with its install command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
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
def private_pulse(base: Path, devices: list[str], shm: bool = True) -> Iterator[PulseServer]:
    """``devices``: module lines loaded before the socket, e.g. ``module-null-sink sink_name=kiosk_out``; without
    ``shm``, audio goes through the socket only (a relay cannot pass the memfd descriptors of shared memory)."""
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
        *([] if shm else ["--disable-shm=yes"]),
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


class ServerCut:
    """A unix-socket relay between a client and the private server that makes the server go at the worst moment:
    right after it answered the client's next request, so that the answer and the hang-up reach libpulse together
    (the race a server crash or a user's ``pulseaudio -k`` loses one time in a few under load).

    ``target`` may change between connections (a new server after a crash); ``cut(kill)`` arms it once: the next
    request a client sends marks its connection, and once that request's answer is passed on, ``kill()`` runs and
    every connection is closed. ``cut(kill, event=True)``: right after the next event the server sends the client
    named ``listener`` (a client's name is in its first requests), the same."""

    def __init__(self, path: Path, target: str, listener: bytes = b"kioskd-events") -> None:
        self.path = path
        self.target = target
        self.listener = listener
        self._listeners: set[socket.socket] = set()
        self._event = False
        self.cuts = 0  # how many times an armed cut happened
        self._kill: Callable[[], None] | None = None
        self._marked: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        self._listener.listen(16)
        threading.Thread(target=self._accept, name="pulse-cut", daemon=True).start()

    @property
    def server(self) -> str:
        return f"unix:{self.path}"

    def cut(self, kill: Callable[[], None], event: bool = False) -> None:
        with self._lock:
            self._kill, self._marked, self._event = kill, None, event

    def close(self) -> None:
        self._listener.close()
        self._close_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target.removeprefix("unix:"))
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, client: socket.socket) -> None:
        from_server = source is not client
        try:
            while data := source.recv(65536):
                with self._lock:
                    if not from_server and self.listener in data:
                        self._listeners.add(client)
                    armed = self._kill is not None
                    if armed and self._event:
                        cut_now = from_server and client in self._listeners
                    else:
                        if armed and not from_server and self._marked is None:
                            self._marked = client
                        cut_now = armed and from_server and self._marked is client
                    kill = self._kill if cut_now else None
                    if cut_now:
                        self._kill = None
                sink.sendall(data)
                if kill is not None:
                    kill()
                    self.cuts += 1
                    self._close_all()
                    return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
