"""NetworkManager and the uplinks' wires for the uplink tests and benchmark: python-dbusmock's ``networkmanager``
template on the private system bus (completed with ``Device.Reapply``), and real veth pairs into network namespaces,
each with an HTTP server the probe reaches through that interface only, so one uplink can really fail while the other
works. The modems are ``modem_service.ModemManagerMock``'s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import dbus
import dbusmock

from tests.integration import require
from tests.integration.power_services import PrivateBus, stop_process

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
DEVICE = NM + ".Device"
SETTINGS = NM + ".Settings"
CONNECTION = NM + ".Settings.Connection"
ACTIVATED_DEVICE = 100
PROBE_ADDRESS = "10.99.0.1"  # the same address behind every uplink: only the interface decides which one answers
PROBE_PORT = 8080
VISIO_BYTES = 60_000
# The far end's server: GET answers 200 with VISIO_BYTES (the probe reads only the status line, the video-call
# check all of it), POST reads its body and answers 200.
SERVER = f"""
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "{VISIO_BYTES}"); self.end_headers()
        try:
            self.wfile.write(bytes({VISIO_BYTES}))
        except OSError:
            pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("{PROBE_ADDRESS}", {PROBE_PORT}), Handler).serve_forever()
"""


class NetworkManagerMock:
    """The template on ``bus``; ``add_device`` plugs an interface in, ``activate`` does what NetworkManager's
    autoconnect does with one of kioskd's connections."""

    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.process = bus.spawn_mock("networkmanager", NM)
        self.connection = bus.connection()
        self.manager_object = self.connection.get_object(NM, NM_PATH)
        self.control = dbus.Interface(self.manager_object, dbusmock.MOCK_IFACE)
        self.manager = dbus.Interface(self.manager_object, NM)

    def add_device(self, name: str, interface: str, ip_interface: str) -> str:
        path = str(self.control.AddEthernetDevice(name, interface, ACTIVATED_DEVICE))
        self.control.SetProperty(path, DEVICE, "IpInterface", dbus.String(ip_interface, variant_level=1))
        device = dbus.Interface(self.connection.get_object(NM, path), dbusmock.MOCK_IFACE)
        device.AddMethod(DEVICE, "Reapply", "a{sa{sv}}tu", "", "")
        return path

    def connections(self) -> dict[str, str]:
        """Connection id → its settings path."""
        settings = dbus.Interface(self.connection.get_object(NM, NM_PATH + "/Settings"), SETTINGS)
        found = {}
        for path in settings.ListConnections():
            values = dbus.Interface(self.connection.get_object(NM, path), CONNECTION).GetSettings()
            found[str(values["connection"]["id"])] = str(path)
        return found

    def settings_of(self, connection_id: str) -> Any:
        path = self.connections()[connection_id]
        return dbus.Interface(self.connection.get_object(NM, path), CONNECTION).GetSettings()

    def activate(self, connection_id: str, device: str) -> str:
        return str(self.manager.ActivateConnection(self.connections()[connection_id], device, "/"))

    def calls(self, *names: str) -> list[tuple[str, list[Any]]]:
        """The manager's recorded method calls (name, arguments), in order."""
        return [(str(name), list(args)) for _, name, args in self.control.GetCalls() if not names or str(name) in names]

    def updates(self, connection_id: str) -> list[Any]:
        """The settings each ``Update`` of a connection carried, in order."""
        path = self.connections()[connection_id]
        mock = dbus.Interface(self.connection.get_object(NM, path), dbusmock.MOCK_IFACE)
        return [args[0] for _, name, args in mock.GetCalls() if str(name) == "Update"]

    def reapplies(self, device: str) -> int:
        mock = dbus.Interface(self.connection.get_object(NM, device), dbusmock.MOCK_IFACE)
        return sum(1 for _, name, _ in mock.GetCalls() if str(name) == "Reapply")

    def close(self) -> None:
        self.connection.close()
        self.bus.stop_mock(self.process)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Wire:
    """One uplink's wire: a veth pair, the far end in its own network namespace with the probe's address and an
    HTTP server on it. ``cut()`` takes the far end down (the operator's network dies), ``mend()`` brings it back."""

    def __init__(self, tag: str, subnet: int) -> None:
        require.binary("ip", "iproute2")
        suffix = f"{os.getpid() % 10000}{tag}"
        self.namespace = f"kioskd-up-{suffix}"
        self.interface, self.peer = f"kq{suffix}0", f"kq{suffix}1"
        self.host_address, self.far_address = f"10.77.{subnet}.2", f"10.77.{subnet}.1"
        self.metric = 100 * subnet
        self.server: subprocess.Popen[bytes] | None = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.interface, "type", "veth", "peer", "name", self.peer)
        _ip("link", "set", self.peer, "netns", self.namespace)
        _ip("addr", "add", f"{self.host_address}/24", "dev", self.interface)
        _ip("link", "set", self.interface, "up")
        inside = ("-n", self.namespace)
        _ip(*inside, "addr", "add", f"{self.far_address}/24", "dev", self.peer)
        _ip(*inside, "link", "set", self.peer, "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "addr", "add", f"{PROBE_ADDRESS}/32", "dev", "lo")
        # the host's own route to the probe's address through this wire (NetworkManager would set one per uplink)
        _ip("route", "add", f"{PROBE_ADDRESS}/32", "via", self.far_address, "dev", self.interface,
            "metric", str(self.metric))  # fmt: skip
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", SERVER],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c",
             f"import socket; socket.create_connection(('{PROBE_ADDRESS}', {PROBE_PORT}), 1).close()"],
            capture_output=True,
        ).returncode:  # fmt: skip
            if time.monotonic() > deadline:
                raise AssertionError(f"the probe's server in {self.namespace} did not start")
            time.sleep(0.05)

    def cut(self) -> None:
        _ip("-n", self.namespace, "link", "set", self.peer, "down")

    def slow(self, kbit: int) -> None:
        """The far end sends no faster than ``kbit`` kbit/s (a saturated cell): the probe passes, a call would not."""
        _ip_tc = ["ip", "netns", "exec", self.namespace, "tc", "qdisc", "replace", "dev", self.peer, "root", "tbf",
                  "rate", f"{kbit}kbit", "burst", "4kb", "latency", "2s"]  # fmt: skip
        subprocess.run(_ip_tc, check=True, capture_output=True)

    def mend(self) -> None:
        """Up again, once the host's end has its carrier back (the kernel tells it up to a second later)."""
        _ip("-n", self.namespace, "link", "set", self.peer, "up")
        deadline = time.monotonic() + 10
        while not self.answers():  # both ends' carriers and the neighbour entry settle within a second or so
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.interface} did not come up again")
            time.sleep(0.05)

    def answers(self) -> bool:
        """Whether the probe's server answers a TCP connection through this wire now."""
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            sock.settimeout(0.5)
            try:
                sock.connect((PROBE_ADDRESS, PROBE_PORT))
            except OSError:
                return False
        return True

    def close(self) -> None:
        if self.server is not None:
            stop_process(self.server)
            self.server = None
        subprocess.run(["ip", "link", "del", self.interface], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
