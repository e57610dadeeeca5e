"""A private mosquitto for the fleet tests: its own config in a temp dir, a password file, a plain loopback listener
for the office side and a TLS one (a CA and server certificate made with openssl) for the van. It is stopped by its
PID, even when a test fails, and can be stopped and started again on the same ports (a link cut). Persistence is on,
so the office's persistent session outlives a restart, as a real office subscriber's would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration import require

VAN_USER, VAN_PASSWORD = "sim-01", "van-secret-1"
OFFICE_USER, OFFICE_PASSWORD = "office", "office-secret-2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificates(directory: Path, name: str = "ca") -> None:
    """A CA (``<name>.pem``) and a server certificate for localhost/127.0.0.1 signed by it (EC keys: fast)."""
    openssl = require.binary("openssl", "openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kioskd test CA",
    )
    if name != "ca":
        return
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip


@dataclass
class Broker:
    directory: Path
    port: int = field(default_factory=free_port)  # plain: the office side
    tls_port: int = field(default_factory=free_port)  # TLS + password: the van
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.binary = require.binary("mosquitto", "mosquitto")
        passwd = require.binary("mosquitto_passwd", "mosquitto")
        make_certificates(self.directory)
        password_file = self.directory / "passwd"
        subprocess.run([passwd, "-b", "-c", str(password_file), VAN_USER, VAN_PASSWORD], check=True)
        subprocess.run([passwd, "-b", str(password_file), OFFICE_USER, OFFICE_PASSWORD], check=True)
        (self.directory / "data").mkdir()
        d = self.directory
        self.config = d / "mosquitto.conf"
        self.config.write_text(
            "user root\n"  # as root, mosquitto would otherwise become the mosquitto user and lose the temp dir
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {password_file}\n"
            "persistence true\n"
            f"persistence_location {d / 'data'}/\n"
            "autosave_interval 0\n"
            f"log_dest file {d / 'mosquitto.log'}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "max_queued_messages 10000\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                if self.proc.poll() is not None:
                    stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(f"mosquitto exited: {stderr}\n{self.log()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto does not listen on {port}:\n{self.log()}")
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM by PID (mosquitto saves its persistence file then), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stderr is not None:
            proc.stderr.close()
        if proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a paused broker would not act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its sockets open but reads nothing and acknowledges nothing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_broker(directory: Path) -> Iterator[Broker]:
    broker = Broker(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Office:
    """The office side: a paho subscriber (on its own network thread) keeping every message it receives."""

    def __init__(self, broker: Broker, topics: list[str], client_id: str = "office", persistent: bool = False) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.username_pw_set(OFFICE_USER, OFFICE_PASSWORD)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)

        def on_connect(client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
            client.subscribe([(topic, 1) for topic in topics])

        def on_subscribe(*_args: object) -> None:
            self.subscribed.set()

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("the office subscriber never got its SUBACK")

    def of(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if predicate(m)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
