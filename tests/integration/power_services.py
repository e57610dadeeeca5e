"""What the power and host integration tests start for real: a pty fed like a VE.Direct port, a private upsd with
the dummy-ups driver, a private D-Bus with python-dbusmock templates, a umockdev testbed run in a child process.

Every service runs in a private directory on loopback and is stopped by its PID, even when the test fails; a missing
binary fails the test with its install command (``require.binary``), never skips it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drivers.power.vedirect_protocol import encode_block
from kioskd.clock import RealClock
from kioskd.hal import DriverContext, Event, PowerState
from tests.integration import require

REPO = Path(__file__).resolve().parents[2]
NUT_PROGRAMS = ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")  # Debian keeps upsd and drivers out of $PATH


# --------------------------------------------------------------------------------------------------- events
class Recorder:
    """A ``DriverContext.emit`` that keeps every event, with a way to wait for one (an upper bound, not a speed)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int, kind: type[Any] = Event) -> list[Any]:
        return [event for event in self.events[mark:] if isinstance(event, kind)]


async def wait_until(condition: Callable[[], bool], what: str = "condition", within: float = 10.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds (an upper bound, never a speed goal)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {within} s for {what}")
        await asyncio.sleep(0.01)


def context(options: dict[str, Any], emit: Callable[[Event], None], runtime_dir: Path, driver: str) -> DriverContext:
    return DriverContext(
        kind="power",
        driver=driver,
        options=options,
        clock=RealClock(),
        emit=emit,
        runtime_dir=runtime_dir,
        source="test-profile.toml",
    )


def describe(state: PowerState) -> dict[str, Any]:
    return {key: getattr(state, key) for key in state.__dataclass_fields__}


# --------------------------------------------------------------------------------------------------- VE.Direct
class VeDirectPort:
    """A pty pair: the backend opens ``path`` (a symlink, like /dev/serial/by-id/…), the test writes the device side.

    ``replug`` closes this pty (the adapter is pulled: the backend reads EIO) and points the symlink at a new one."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "ttyVE.direct"
        self.master = self.slave = -1
        self._open()

    def _open(self) -> None:
        self.master, self.slave = os.openpty()
        # Raw before the first byte: a cooked pty would turn \r into \n and echo back until the backend sets it.
        tty.setraw(self.slave)
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.path)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def replug(self) -> None:
        self.unplug()
        self._open()

    def close(self) -> None:
        self.unplug()


def bmv_block(**changes: str) -> bytes:
    """One live-values block of a BMV-712 battery monitor, with ``changes`` applied."""
    fields = {
        "PID": "0xA381",
        "V": "12840",
        "VS": "12710",
        "I": "-4100",
        "P": "-53",
        "CE": "-24300",
        "SOC": "876",
        "TTG": "615",
        "Alarm": "OFF",
        "Relay": "OFF",
        "AR": "0",
        "BMV": "712 Smart",
        "FW": "0413",
        "CS": "3",
    }
    fields.update(changes)
    return encode_block(fields)


def corrupted(block: bytes) -> bytes:
    """The block with one digit of its SOC changed: the checksum no longer balances."""
    at = block.index(b"SOC\t") + 4
    return block[:at] + (b"1" if block[at : at + 1] != b"1" else b"2") + block[at + 1 :]


class SocatSerial:
    """A serial line made by socat: two linked ptys, the backend opens ``path`` (as /dev/vedirect-<serial>), the test
    writes the device's stream into ``device``. ``stop`` kills socat: the line goes quiet, as a pulled cable."""

    def __init__(self, directory: Path, name: str) -> None:
        socat = require.binary("socat", "socat")
        self.path = directory / f"vedirect-{name}"
        self.device = directory / f"device-{name}"
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [socat, f"pty,raw,echo=0,link={self.path}", f"pty,raw,echo=0,link={self.device}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (self.path.exists() and self.device.exists()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("socat did not make its ptys")
            time.sleep(0.01)
        self._fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        os.write(self._fd, data)

    def stop(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        stop_process(self.process)
        self.process = None


def block(**fields: str) -> bytes:
    """One VE.Direct block with exactly ``fields`` (an MPPT's, an inverter's …)."""
    return encode_block(fields)


HEX_FRAMES = (b":A0102000543\n", b":7F0ED0071\n", b":51641F9\n")


# --------------------------------------------------------------------------------------------------- NUT
def nut_program(name: str) -> str:
    for directory in NUT_PROGRAMS:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return require.binary(name, "nut-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class NutServer:
    """A private upsd on 127.0.0.1:``port`` serving one UPS ``van`` from the dummy-ups driver.

    The UPS's variables come from ``van.dev``, which dummy-ups re-reads when its mtime changes (checked every second):
    ``set`` rewrites it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.conf = root / "conf"
        self.state = root / "state"
        self.dev = self.conf / "van.dev"
        self.upsd_bin = nut_program("upsd")
        self.driver_bin = nut_program("dummy-ups")
        self.driver: subprocess.Popen[bytes] | None = None
        self.upsd: subprocess.Popen[bytes] | None = None
        self._stamp = 0  # the data file's last mtime, whole seconds
        self.conf.mkdir(mode=0o700, parents=True)
        self.state.mkdir(mode=0o700)
        (self.conf / "nut.conf").write_text("MODE=standalone\n")
        (self.conf / "ups.conf").write_text(
            f'[van]\n  driver = dummy-ups\n  port = {self.dev}\n  desc = "kioskd test UPS"\n  pollinterval = 1\n'
        )
        (self.conf / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\nMAXAGE 15\n")
        (self.conf / "upsd.users").write_text("")
        for name in ("upsd.conf", "upsd.users", "ups.conf"):
            (self.conf / name).chmod(0o600)
        self.env = {
            **os.environ,
            "NUT_CONFPATH": str(self.conf),
            "NUT_STATEPATH": str(self.state),
            "NUT_ALTPIDPATH": str(self.state),
        }
        # As root both programs would switch to the `nut` user, which cannot read a private temp dir.
        self.user = ["-u", "root"] if os.geteuid() == 0 else []

    def set(self, status: str, charge: float | None, runtime: float | None) -> None:
        """New variables for dummy-ups to pick up (within its one-second poll); ``None`` leaves a variable out (a
        DC-UPS that has no ``battery.charge``)."""
        text = f"ups.status: {status}\n"
        text += "" if charge is None else f"battery.charge: {charge:g}\n"
        text += "" if runtime is None else f"battery.runtime: {runtime:g}\n"
        tmp = self.dev.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.dev)
        # dummy-ups compares whole-second mtimes: two writes within one second would look like one, and the second
        # never be read. Each write gets a later second than the last.
        self._stamp = max(int(time.time()), self._stamp + 1)
        os.utime(self.dev, (self._stamp, self._stamp))

    def get(self, variable: str) -> str:
        """upsd's answer to ``GET VAR van <variable>`` ("" when it does not answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(f"GET VAR van {variable}\n".encode())
                return sock.recv(200).decode(errors="replace").strip()
        except OSError:
            return ""

    def serve(self, status: str, charge: float | None, runtime: float | None) -> None:
        """``set``, then wait until upsd serves it, so a backend started now reads nothing older."""
        self.set(status, charge, runtime)
        deadline = time.monotonic() + 10
        while self.get("ups.status") != f'VAR van ups.status "{status}"':
            if time.monotonic() > deadline:
                raise AssertionError(f"upsd does not serve {status!r}: {self.get('ups.status')!r}")
            time.sleep(0.05)

    def start(self) -> None:
        self.driver = subprocess.Popen(
            [self.driver_bin, "-a", "van", "-F", *self.user],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "dummy-ups.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while not (self.state / "dummy-ups-van").exists():
            if self.driver.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dummy-ups did not start: {(self.root / 'dummy-ups.log').read_text()}")
            time.sleep(0.02)
        self.start_upsd()

    def start_upsd(self) -> None:
        """Start upsd and return once it serves the driver's data (it says WAIT or DATA-STALE until then)."""
        self.upsd = subprocess.Popen(
            [self.upsd_bin, "-F", *self.user],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "upsd.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        answer = ""
        while not answer.startswith("VAR van ups.status") or "WAIT" in answer:
            if self.upsd.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "upsd.log").read_text()
                raise AssertionError(f"upsd did not serve the UPS (last answer {answer!r}): {log}")
            time.sleep(0.05)
            answer = self.get("ups.status")

    def stop_upsd(self) -> None:
        stop_process(self.upsd)
        self.upsd = None

    def stop(self) -> None:
        stop_process(self.upsd)
        stop_process(self.driver)


@contextmanager
def nut_server(root: Path, charge: float | None = 100, runtime: float | None = 3600) -> Iterator[NutServer]:
    """A running upsd; ``charge=None`` makes a DC-UPS that never reports ``battery.charge`` (dummy-ups keeps a
    variable once it has seen it, so a UPS without one must start without it)."""
    server = NutServer(root)
    try:
        server.set("OL CHRG" if charge is not None else "OL", charge, runtime)
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------- D-Bus
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:dir={directory}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """A private dbus-daemon playing the system bus; ``address`` is what a client connects to."""

    def __init__(self) -> None:
        daemon = require.binary("dbus-daemon", "dbus")
        # A short directory: a unix socket path must fit in 108 bytes, pytest's tmp_path often does not.
        self.directory = Path(tempfile.mkdtemp(prefix="kioskd-bus-"))
        config = self.directory / "bus.conf"
        config.write_text(BUS_CONFIG.format(directory=self.directory))
        self.process = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line:
            stop_process(self.process)
            raise AssertionError("dbus-daemon printed no address")
        self.address = line
        self.mocks: list[subprocess.Popen[bytes]] = []

    def connection(self) -> Any:
        """A dbus-python connection to drive the mocks (dbusmock's own API is dbus-python)."""
        import dbus.bus

        return dbus.bus.BusConnection(self.address)

    def spawn_mock(self, template: str, name: str, parameters: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
        """python-dbusmock serving ``template`` on this bus, once ``name`` is owned."""
        command = [sys.executable, "-m", "dbusmock", "--system", "--template", template]
        if parameters:
            command += ["--parameters", json.dumps(parameters)]
        mock = subprocess.Popen(
            command,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.mocks.append(mock)
        bus = self.connection()
        deadline = time.monotonic() + 10
        try:
            while not bus.name_has_owner(name):
                if mock.poll() is not None or time.monotonic() > deadline:
                    error = b"" if mock.stderr is None else mock.stderr.read()
                    raise AssertionError(f"dbusmock {template} did not start: {error.decode()[-2000:]}")
                time.sleep(0.02)
        finally:
            bus.close()
        return mock

    def stop_mock(self, mock: subprocess.Popen[bytes]) -> None:
        stop_process(mock)
        if mock in self.mocks:
            self.mocks.remove(mock)

    def close(self) -> None:
        for mock in self.mocks:
            stop_process(mock)
        stop_process(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_bus() -> Iterator[PrivateBus]:
    bus = PrivateBus()
    try:
        yield bus
    finally:
        bus.close()


# --------------------------------------------------------------------------------------------------- umockdev
def run_under_umockdev(function: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run ``tests.integration.<function>`` in a child under ``umockdev-wrapper``; its JSON lines, parsed.

    umockdev's preload library must be there from the process's first instruction, so it cannot run in pytest's."""
    wrapper = require.binary("umockdev-wrapper", "umockdev gir1.2-umockdev-1.0")
    module, _, name = function.rpartition(".")
    code = f"import asyncio, {module} as m; asyncio.run(m.{name}())"
    result = subprocess.run(
        [wrapper, sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"the umockdev child failed ({result.returncode}):\n{result.stderr.decode()[-4000:]}")
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.startswith("{")]
