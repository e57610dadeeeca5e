"""NetworkManager and the uplinks' wires for the uplink tests and benchmark: python-dbusmock's ``networkmanager``
template on the private system bus (completed with ``Device.Reapply``), and real veth pairs into network namespaces,
each with an HTTP server the probe reaches through that interface only, so one uplink can really fail while the other
works. The modems are ``modem_service.ModemManagerMock``'s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
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
# The far end's server: GET /generate_204 answers 204 (NetworkManager's connectivity check), any other GET 200 with
# VISIO_BYTES (the probe reads only the status line, the video-call check all of it), POST reads its body and
# answers 200.
SERVER = f"""
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/generate_204":  # NetworkManager's connectivity check: no body, status 204
            self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers(); return
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


# --------------------------------------------------------------------------------------- the real NetworkManager
NM_CONFIG = """[main]
plugins=keyfile
no-auto-default=*
auth-polkit=false
dhcp=internal
dns=none
rc-manager=unmanaged
[keyfile]
path={directory}/connections
[connectivity]
enabled={check}
uri=http://{probe}:{port}/generate_204
response=
interval={interval}
[logging]
level=INFO
"""
# In its own mount namespace NetworkManager gets private /run/NetworkManager and /var/lib/NetworkManager, and a
# read-only /sys: NetworkManager then takes itself for a container and trusts the kernel's links without waiting for
# udev to initialise them (there is no udevd here; with a writable /sys every link stays "unmanaged").
NM_START = """set -e
mkdir -p /run/NetworkManager /var/lib/NetworkManager
mount -t tmpfs kioskd-nm /run/NetworkManager
mount -t tmpfs kioskd-nm /var/lib/NetworkManager
mount -o remount,ro /sys
exec NetworkManager --debug --config={directory}/nm.conf --config-dir={directory}/conf.d \
  --system-config-dir={directory}/conf.d --state-file={directory}/nm.state \
  --intern-config={directory}/intern.conf --pid-file={directory}/nm.pid
"""


class NetworkManagerDaemon:
    """Debian's NetworkManager on ``bus`` (the private system bus, ModemManager's mock beside it), in a network
    namespace of its own, managing one veth link per ``links`` name. Each link's far end stays in the test's
    namespace with a ``10.78.<k>.1/24`` address, a DHCP server (dnsmasq) and the probe's address (``far_address``,
    on the loopback) behind it; ``kill(n)`` makes the far end answer nothing (carrier up, nothing passes: a dead
    uplink). ``nmcli(...)`` asks it through the same bus. ``check_interval`` turns NetworkManager's own connectivity
    check on (0: off). Addresses and names follow the process id, so that two runs on one machine do not meet (the
    dbusmock tests' ``PROBE_ADDRESS`` is not used: a local address would shadow their wires' routes)."""

    def __init__(self, bus: PrivateBus, links: int = 2, check_interval: int = 0) -> None:
        self.bus = bus
        self.nm = require.binary("NetworkManager", "network-manager")
        self.nmcli_path = require.binary("nmcli", "network-manager")
        self.dnsmasq = require.binary("dnsmasq", "dnsmasq-base")
        require.binary("unshare", "util-linux")
        suffix = f"{os.getpid() % 10000}"
        first = 1 + (os.getpid() % 60) * 4  # this run's /24s: 10.78.first … 10.78.first+3
        self.subnets = [f"10.78.{first + i}" for i in range(links)]
        self.far_address = f"10.98.{os.getpid() % 250}.1"
        self.rule_priority = 1000 + os.getpid() % 10000
        self.namespace = f"kioskd-nm-{suffix}"
        self.directory = Path(tempfile.mkdtemp(prefix="nm-", dir=bus.directory))  # its own, NetworkManager after
        (self.directory / "connections").mkdir()
        (self.directory / "conf.d").mkdir()
        self.links = [f"kn{suffix}{chr(97 + i)}" for i in range(links)]  # NetworkManager's side
        self.far = [f"kf{suffix}{chr(97 + i)}" for i in range(links)]  # the far end, in the test's namespace
        self.servers: list[subprocess.Popen[bytes]] = []
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self._build(check_interval)
        except BaseException:
            self.close()
            raise

    def _build(self, check_interval: int) -> None:
        _ip("netns", "add", self.namespace)
        _ip("-n", self.namespace, "link", "set", "lo", "up")
        for i, (link, far) in enumerate(zip(self.links, self.far, strict=True)):
            _ip("link", "add", far, "type", "veth", "peer", "name", link)
            _ip("link", "set", link, "netns", self.namespace)
            _ip("addr", "add", f"{self.subnets[i]}.1/24", "dev", far)
            _ip("link", "set", far, "up")
            self.servers.append(
                subprocess.Popen(
                    [
                        self.dnsmasq,
                        "--keep-in-foreground",
                        "--conf-file=/dev/null",
                        "--port=0",
                        "--user=root",
                        f"--interface={far}",
                        "--bind-interfaces",
                        "--except-interface=lo",
                        f"--dhcp-range={self.subnets[i]}.10,{self.subnets[i]}.50,1h",
                        f"--dhcp-option=3,{self.subnets[i]}.1",
                        f"--dhcp-leasefile={self.directory}/leases-{i}",
                        f"--pid-file={self.directory}/dnsmasq-{i}.pid",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        _ip("addr", "add", f"{self.far_address}/32", "dev", "lo")  # behind every far end: only the route decides
        server = SERVER.replace(PROBE_ADDRESS, self.far_address)
        self.servers.append(
            subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        enabled = "true" if check_interval else "false"
        config = NM_CONFIG.format(
            directory=self.directory, check=enabled, probe=self.far_address, port=PROBE_PORT,
            interval=check_interval or 300,
        )  # fmt: skip
        (self.directory / "nm.conf").write_text(config)
        script = self.directory / "start.sh"
        script.write_text(NM_START.format(directory=self.directory))
        self.log = (self.directory / "nm.log").open("wb")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "ip", "netns", "exec", self.namespace, "sh",
             str(script)],
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address},
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while "running" not in self.nmcli("-t", "-f", "RUNNING", "general", check=False):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"NetworkManager did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return (self.directory / "nm.log").read_text(errors="replace")

    def nmcli(self, *args: str, check: bool = True) -> str:
        """``nmcli`` on the private bus; its standard output."""
        result = subprocess.run(
            [self.nmcli_path, *args], env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if check and result.returncode:
            raise AssertionError(f"nmcli {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def ip(self, *args: str) -> str:
        """``ip`` inside NetworkManager's namespace; its standard output."""
        return subprocess.run(["ip", "-n", self.namespace, *args], capture_output=True, text=True, check=True).stdout

    def default_route(self) -> str:
        """The link the namespace's traffic to the probe's address leaves by now."""
        found = subprocess.run(["ip", "-n", self.namespace, "route", "get", self.far_address], capture_output=True,
                               text=True)  # fmt: skip
        words = found.stdout.split()  # nothing while no link has a route there
        return words[words.index("dev") + 1] if "dev" in words else ""

    def kill_command(self, n: int, dead: bool = True) -> list[str]:
        """The command (in the test's namespace) that kills link ``n``, or mends it: every reply to its subnet is
        dropped by a blackhole rule. The carrier stays, ARP still answers, no packet comes back. (Not netem: this
        kernel has no ``sch_netem``.)"""
        verb = "add" if dead else "del"
        return ["ip", "rule", verb, "to", f"{self.subnets[n]}.0/24", "priority", str(self.rule_priority + n),
                "blackhole"]  # fmt: skip

    def kill(self, n: int) -> None:
        subprocess.run(self.kill_command(n), check=True, capture_output=True)

    def mend(self, n: int) -> None:
        subprocess.run(self.kill_command(n, dead=False), capture_output=True)

    def close(self) -> None:
        stop_process(self.process)
        self.process = None
        for server in self.servers:
            stop_process(server)
        self.servers = []
        for n, far in enumerate(self.far):
            self.mend(n)
            subprocess.run(["ip", "link", "del", far], capture_output=True)
        subprocess.run(["ip", "addr", "del", f"{self.far_address}/32", "dev", "lo"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
