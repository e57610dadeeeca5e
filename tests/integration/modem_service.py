"""ModemManager for the modem tests and benchmark: python-dbusmock's ``modemmanager`` template on a private system
bus, completed with what the template lacks (RegistrationState, bearers through Simple.Connect/Disconnect, Reset,
the Signal interface), and a 127.0.0.1 HTTP server the reachability probe can be pointed at."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dbus
import dbusmock

from tests.integration.power_services import PrivateBus, free_port

MM = "org.freedesktop.ModemManager1"
MM_PATH = "/org/freedesktop/ModemManager1"
MODEM = MM + ".Modem"
M3GPP = MODEM + ".Modem3gpp"
SIMPLE = MODEM + ".Simple"
SIGNAL = MODEM + ".Signal"
LOCATION = MODEM + ".Location"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
SIM_PATH = "/org/freedesktop/ModemManager1/SIM/2"
BEARER = "/org/freedesktop/ModemManager1/Bearer/0"
REGISTERED, CONNECTED = 8, 11
DUAL_SIM_IMEI = "356938035643809"  # a multi-SIM modem's IMEI: it names the modem across the probes a slot switch causes

# Method bodies run inside the mock (dbusmock executes them with ``self`` and ``args``): a bearer goes up and down.
BEARER_UP = f"{{'State': dbus.Int32({CONNECTED}), 'Bearers': dbus.Array(['{BEARER}'], signature='o')}}"
BEARER_DOWN = f"{{'State': dbus.Int32({REGISTERED}), 'Bearers': dbus.Array([], signature='o')}}"
CONNECT = f"self.UpdateProperties('{MODEM}', {BEARER_UP}); ret = '{BEARER}'"
DISCONNECT = f"self.UpdateProperties('{MODEM}', {BEARER_DOWN})"
SETUP = f"self.UpdateProperties('{SIGNAL}', {{'Rate': args[0]}})"


def lte(rsrp: float, rsrq: float, snr: float) -> dbus.Dictionary:
    return dbus.Dictionary(
        {"rsrp": dbus.Double(rsrp), "rsrq": dbus.Double(rsrq), "snr": dbus.Double(snr)}, signature="sv"
    )


class ModemManagerMock:
    """The template on ``bus``; ``add_modem`` plugs a modem in, ``remove_modem`` pulls it (a USB reset)."""

    def __init__(self, bus: PrivateBus) -> None:
        self.bus = bus
        self.process = bus.spawn_mock("modemmanager", MM)
        self.connection = bus.connection()
        self.manager = self.connection.get_object(MM, MM_PATH)
        self.control = dbus.Interface(self.manager, dbusmock.MOCK_IFACE)
        self.path = ""

    @property
    def modem(self) -> Any:
        return self.modem_at(self.path)

    def modem_at(self, path: str) -> Any:
        """The mock control of the modem at ``path`` (``modem`` is the first one added)."""
        return dbus.Interface(self.connection.get_object(MM, path), dbusmock.MOCK_IFACE)

    def add_modem(
        self,
        state: int = CONNECTED,
        registration: int = 1,
        signal_interface: bool = True,
        number: int | None = None,
        operator: str | None = None,
        quality: int = 70,
        figures: tuple[float, float, float] = (-95.0, -11.0, 8.0),
        sim_slots: tuple[str, ...] = (),
    ) -> str:
        """A modem plugged in: the template's (``/Modems/8``), or another at ``number`` beside it (the template
        has only one), with its own SIM; ``operator`` names its network, ``figures`` are its LTE RSRP/RSRQ/SNR.
        ``sim_slots``: a multi-SIM modem, one operator per slot, on slot 1; ``SetPrimarySimSlot`` moves it to
        another slot's SIM and operator at once (ModemManager would probe the modem again first).
        The first modem added is ``modem``."""
        if number is None:
            path, _sim = self.control.AddSimpleModem()
            path = str(path)
            props: dict[str, Any] = {}
            quality_now = dbus.Struct((dbus.UInt32(quality), dbus.Boolean(True)), signature="ub")
            self.modem_at(path).UpdateProperties(MODEM, {"SignalQuality": quality_now})
        else:
            path = f"{MM_PATH}/Modems/{number}"
            props = {
                "State": dbus.Int32(6),  # enabled: the state it reaches comes below, as for the template's
                "AccessTechnologies": dbus.UInt32(1 << 14),
                "UnlockRequired": dbus.UInt32(0),
                "SignalQuality": dbus.Struct((dbus.UInt32(quality), dbus.Boolean(True)), signature="ub"),
                "Sim": dbus.ObjectPath(f"{MM_PATH}/SIM/{number}"),
            }
            self.control.AddObject(path, MODEM, props, [])
        self.path = self.path or path
        modem = self.modem_at(path)
        modem.AddProperty(MODEM, "StateFailedReason", dbus.UInt32(0))
        modem.AddProperty(MODEM, "Bearers", dbus.Array([BEARER] if state == CONNECTED else [], signature="o"))
        modem.AddMethod(MODEM, "Reset", "", "", "")
        if sim_slots:
            operator = sim_slots[0]
            sims = dbus.Array([f"{MM_PATH}/SIM/{20 + i}" for i in range(len(sim_slots))], signature="o")
            modem.AddProperty(MODEM, "SimSlots", sims)
            modem.AddProperty(MODEM, "PrimarySimSlot", dbus.UInt32(1))
            modem.AddProperty(MODEM, "EquipmentIdentifier", dbus.String(DUAL_SIM_IMEI))
            props.update(SimSlots=sims, PrimarySimSlot=dbus.UInt32(1), EquipmentIdentifier=dbus.String(DUAL_SIM_IMEI))
            switch = (
                f"self.UpdateProperties('{MODEM}', {{'PrimarySimSlot': dbus.UInt32(args[0])}}); "
                f"self.UpdateProperties('{M3GPP}', {{'OperatorName': {list(sim_slots)!r}[args[0] - 1]}})"
            )
            modem.AddMethod(MODEM, "SetPrimarySimSlot", "u", "", switch)
        modem.AddMethod(SIMPLE, "Connect", "a{sv}", "o", CONNECT)
        modem.AddMethod(SIMPLE, "Disconnect", "o", "", DISCONNECT)
        modem.AddProperty(M3GPP, "RegistrationState", dbus.UInt32(registration))
        gpp: dict[str, Any] = {"RegistrationState": dbus.UInt32(registration)}
        if operator is not None:
            gpp["OperatorName"] = dbus.String(operator)
            if number is None:  # the template's modem has one already
                modem.UpdateProperties(M3GPP, {"OperatorName": dbus.String(operator)})
            else:
                modem.AddProperty(M3GPP, "OperatorName", dbus.String(operator))
        added: dict[str, Any] = {SIMPLE: dbus.Dictionary({}, signature="sv")}
        if props:
            added[MODEM] = dbus.Dictionary(props, signature="sv")
        if signal_interface:
            signal = {"Rate": dbus.UInt32(0), "Lte": lte(*figures), "Nr5g": dbus.Dictionary({}, signature="sv")}
            for name, value in signal.items():
                modem.AddProperty(SIGNAL, name, value)
            modem.AddMethod(SIGNAL, "Setup", "u", "", SETUP)
            added[SIGNAL] = dbus.Dictionary(signal, signature="sv")
        # What ModemManager does once the modem is enabled: new interfaces, then the state it reached.
        added[M3GPP] = dbus.Dictionary(gpp, signature="sv")
        self.manager.EmitSignal(
            OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [dbus.ObjectPath(path), added],
            dbus_interface=dbusmock.MOCK_IFACE,
        )  # fmt: skip
        modem.UpdateProperties(MODEM, {"State": dbus.Int32(state), "StateFailedReason": dbus.UInt32(0)})
        return path

    def add_gps(self, latitude: float, longitude: float) -> None:
        """The Location interface with a raw GPS fix (MM_MODEM_LOCATION_SOURCE_GPS_RAW = 2), as ModemManager
        publishes it once ``Location.Setup`` enabled the source with signals."""
        modem = self.modem
        modem.AddProperty(LOCATION, "Capabilities", dbus.UInt32(2))
        modem.AddProperty(LOCATION, "Enabled", dbus.UInt32(0))
        modem.AddProperty(LOCATION, "Location", self.fix(latitude, longitude))
        modem.AddMethod(LOCATION, "Setup", "ub", "", f"self.UpdateProperties('{LOCATION}', {{'Enabled': args[0]}})")
        self.manager.EmitSignal(
            OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}",
            [dbus.ObjectPath(self.path), {LOCATION: dbus.Dictionary({"Capabilities": dbus.UInt32(2)}, signature="sv")}],
            dbus_interface=dbusmock.MOCK_IFACE,
        )  # fmt: skip

    @staticmethod
    def fix(latitude: float, longitude: float) -> dbus.Dictionary:
        gps = dbus.Dictionary({"latitude": dbus.Double(latitude), "longitude": dbus.Double(longitude)}, signature="sv")
        return dbus.Dictionary({dbus.UInt32(2): gps}, signature="uv")

    def remove_modem(self) -> None:
        gone = [MODEM, M3GPP, SIMPLE, SIGNAL, MODEM + ".CellBroadcast", MODEM + ".Voice"]
        self.control.RemoveObject(self.path)
        self.control.RemoveObject(SIM_PATH)
        self.manager.EmitSignal(
            OBJECT_MANAGER, "InterfacesRemoved", "oas", [dbus.ObjectPath(self.path), dbus.Array(gone, signature="s")],
            dbus_interface=dbusmock.MOCK_IFACE,
        )  # fmt: skip

    def set(self, interface: str, **properties: Any) -> None:
        self.modem.UpdateProperties(interface, properties)

    def set_path(self, interface: str, name: str, path: str) -> None:
        """An object-path property: through Properties.Set, since dbusmock's UpdateProperties cannot wrap one."""
        obj = self.connection.get_object(MM, self.path)
        obj.Set(interface, name, dbus.ObjectPath(path), dbus_interface=dbus.PROPERTIES_IFACE)

    def calls(self, *names: str) -> list[str]:
        """The modem's recorded method calls, in order (only ``names`` when given)."""
        return [str(name) for _, name, _ in self.modem.GetCalls() if not names or str(name) in names]

    def close(self) -> None:
        self.connection.close()
        self.bus.stop_mock(self.process)


class ProbeTarget:
    """A 127.0.0.1 HTTP server for the reachability probe: healthy (204), wrong status (a captive portal's 200),
    or unreachable (not listening at all)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 204
        self.hits = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/generate_204"

    def healthy(self) -> None:
        self.status = 204
        self._listen()

    def wrong_status(self) -> None:
        self.status = 200
        self._listen()

    def unreachable(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _listen(self) -> None:
        if self._server is not None:
            return
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.hits += 1
                self.send_response(target.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.unreachable()
