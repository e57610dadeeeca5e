"""The LTE modem through ModemManager on the system bus (dbus-fast, asyncio), followed through signals, not polled:
modems coming and going (ObjectManager), their state, signal, technology, operator and registration
(PropertiesChanged), and LTE/5G RSRP, RSRQ and SINR from the Signal interface once ``Signal.Setup`` set its rate.

Every call and signal is checked against the introspection shipped next to this file (``modemmanager1.xml``), not
the service's. It never connects or disconnects a bearer: NetworkManager owns the data connection
(``drivers/network/networkmanager.py``); it resets the modem only when the connectivity policy asks; it never blocks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, ClassVar

from dbus_fast import Message, MessageType
from pydantic import Field

from drivers.backend_task import BackgroundTask
from drivers.dbus_link import DBUS, NOT_THERE, OBJECT_MANAGER, Contract, DBusCallError, DBusLink, match_rules, plain
from kioskd.hal import (
    DeviceError,
    DeviceUnsupported,
    DriverContext,
    DriverOptions,
    ModemChanged,
    ModemState,
    Registration,
    SignalChanged,
    SimStatus,
    Technology,
)

log = logging.getLogger(__name__)

MM = "org.freedesktop.ModemManager1"
MM_PATH = "/org/freedesktop/ModemManager1"
MODEMS = MM_PATH + "/Modems/"
MODEM = MM + ".Modem"
M3GPP = MODEM + ".Modem3gpp"
SIGNAL = MODEM + ".Signal"
LOCATION = MODEM + ".Location"
CONTRACT = Contract(MM, Path(__file__).with_name("modemmanager1.xml"))

# ModemManager's enumerations (ModemManager-enums.h)
STATE_NAMES = {
    -1: "failed",
    0: "unknown",
    1: "initializing",
    2: "locked",
    3: "disabled",
    4: "disabling",
    5: "enabling",
    6: "enabled",
    7: "searching",
    8: "registered",
    9: "disconnecting",
    10: "connecting",
    11: "connected",
}
STATE_LOCKED, STATE_SEARCHING, STATE_REGISTERED, STATE_CONNECTED = 2, 7, 8, 11
FAILED_SIM_MISSING, FAILED_SIM_ERROR = 2, 3
LOCK_SIM_PIN, LOCK_SIM_PUK = 2, 4
REGISTRATION: dict[int, Registration] = {
    0: "idle",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home",  # SMS only
    7: "roaming",  # SMS only
    8: "denied",  # emergency services only
    9: "home",  # CSFB not preferred
    10: "roaming",
}
ACCESS_5GNR = 1 << 15
ACCESS_LTE = (1 << 14) | (1 << 16) | (1 << 17)  # LTE, LTE Cat-M, NB-IoT
ACCESS_UMTS = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9)
ACCESS_GSM = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4)
LOCATION_3GPP_LAC_CI, LOCATION_GPS_RAW = 1 << 0, 1 << 1
LOCATION_WANTED = LOCATION_3GPP_LAC_CI | LOCATION_GPS_RAW  # the serving cell names the stop when GPS has no fix

MATCH_RULES = match_rules(MM, MM_PATH, OBJECT_MANAGER)


class ModemManagerOptions(DriverOptions):
    bus_address: str | None = Field(None, description="a D-Bus address; default the system bus")
    modem: str | None = Field(
        None,
        description="a modem's object path, its last part or its IMEI (a dual-SIM modem: the IMEI, which survives "
        "the new probe a SIM slot switch causes); default the first one",
    )
    signal_rate: int = Field(30, ge=0, le=3600, description="seconds between RSRP/RSRQ/SINR refreshes; 0: off")
    location: bool = Field(
        False, description="follow the modem's GPS and serving cell (Location interface) to name the stop"
    )
    command_timeout: float = Field(120, gt=0, le=600, description="seconds a Reset may take")
    reconnect: float = Field(5.0, gt=0, description="seconds between attempts to reach the bus")


def technology_of(access: int) -> Technology:
    if access & ACCESS_5GNR:
        return "5gnr"
    if access & ACCESS_LTE:
        return "lte"
    if access & ACCESS_UMTS:
        return "umts"
    if access & ACCESS_GSM:
        return "gsm"
    return "none"


def _number(values: dict[str, Any], key: str, digits: int = 1) -> float | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN: "cannot tell"
        return None
    return round(float(value), digits)


def modem_state(props: dict[str, dict[str, Any]]) -> ModemState:
    """The HAL's view of one modem's properties (interface → name → plain value)."""
    modem, m3gpp = props.get(MODEM, {}), props.get(M3GPP, {})
    state = int(modem.get("State", 0))
    failed = int(modem.get("StateFailedReason", 0))
    sim_path = str(modem.get("Sim", "/"))
    sim: SimStatus
    if failed in (FAILED_SIM_MISSING, FAILED_SIM_ERROR) or sim_path == "/":
        sim = "missing"
    elif state == STATE_LOCKED or int(modem.get("UnlockRequired", 0)) in (LOCK_SIM_PIN, LOCK_SIM_PUK):
        sim = "locked"
    else:
        sim = "ready"
    registration: Registration
    if "RegistrationState" in m3gpp:
        registration = REGISTRATION.get(int(m3gpp["RegistrationState"]), "unknown")
    elif state >= STATE_REGISTERED:
        registration = "home"  # no 3GPP interface (or an old mock): registered is all ModemManager says
    elif state == STATE_SEARCHING:
        registration = "searching"
    else:
        registration = "idle" if state > STATE_LOCKED else "unknown"
    quality = modem.get("SignalQuality")
    signal = int(quality[0]) if isinstance(quality, list | tuple) and quality else None
    technology = technology_of(int(modem.get("AccessTechnologies", 0)))
    # 5G figures when the modem is on 5G, else LTE's (ModemManager reports NaN or nothing for what it cannot tell)
    radio = props.get(SIGNAL, {})
    figures = radio.get("Nr5g") if technology == "5gnr" and radio.get("Nr5g") else radio.get("Lte")
    figures = figures if isinstance(figures, dict) else {}
    latitude = longitude = None
    cell: str | None = None
    fix = props.get(LOCATION, {}).get("Location")
    if isinstance(fix, dict):
        gps = fix.get(LOCATION_GPS_RAW)
        if isinstance(gps, dict):
            latitude, longitude = _number(gps, "latitude", 6), _number(gps, "longitude", 6)  # 0.1 m
        cell = cell_of(fix.get(LOCATION_3GPP_LAC_CI))
    detail = STATE_NAMES.get(state, str(state))
    slots = modem.get("SimSlots") or []
    primary = int(modem.get("PrimarySimSlot", 0))  # 0: a modem with one SIM slot
    return ModemState(
        present=True,
        registration=registration,
        technology=technology,
        signal=signal,
        operator=str(m3gpp.get("OperatorName") or "") or None,
        connected=state == STATE_CONNECTED,
        internet=None,
        detail=detail,
        rsrp=_number(figures, "rsrp"),
        rsrq=_number(figures, "rsrq"),
        sinr=_number(figures, "snr"),
        sim=sim,
        latitude=latitude,
        longitude=longitude,
        cell=cell,
        sim_slot=primary if primary and len(slots) > 1 else None,
    )


def cell_of(value: Any) -> str | None:
    """ "MCCMNC-LAC-CID" from ModemManager's 3GPP location string "MCC,MNC,LAC,CI[,TAC]" (hexadecimal LAC, TAC and
    CI; the TAC stands in for the LAC on LTE), or None when the modem tells no cell."""
    if not isinstance(value, str):
        return None
    parts = [part.strip() for part in value.split(",")]
    if len(parts) < 4 or not parts[0] or not parts[3]:
        return None
    area = parts[2] if parts[2].strip("0") else (parts[4] if len(parts) > 4 else parts[2])
    return f"{parts[0]}{parts[1]}-{area.upper()}-{parts[3].upper()}"


class ModemManagerModem:
    """A ``Modem`` on ModemManager's first modem (or the one the profile names).

    The modem's properties are read once (``GetManagedObjects``) and then kept current from signals. A modem that
    disappears (USB reset, ``Reset``) is dropped and the next one that appears is adopted, without a restart."""

    options_model: ClassVar[type[ModemManagerOptions]] = ModemManagerOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self.ctx = ctx
        self._state = ModemState(detail="ModemManager not reached yet")
        self._link = DBusLink(
            "ModemManager",
            self.options.bus_address,
            MATCH_RULES,
            self._on_message,
            self._session,
            self._lost,
            self.options.reconnect,
        )
        self._path: str | None = None
        self._props: dict[str, dict[str, Any]] = {}
        self._task = BackgroundTask("modemmanager", "modem", ctx.emit)
        self._setups: set[asyncio.Task[None]] = set()
        self._rescan = asyncio.Event()

    @property
    def state(self) -> ModemState:
        return self._state

    async def start(self) -> None:
        self._task.start(self._link.run)

    async def close(self) -> None:
        for pending in list(self._setups):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await self._task.close()
        self._link.disconnect()

    # ------------------------------------------------------------------------------------------- commands
    async def reset(self) -> None:
        path = self._require()
        await self._command(path, MODEM, "Reset")

    async def set_sim_slot(self, slot: int) -> None:
        """The modem works on the SIM in ``slot`` (from 1): ModemManager switches, then probes the modem again (it
        leaves the bus and comes back, on the other SIM's operator); nothing happens when it is there already."""
        path = self._require()
        if int(self._props.get(MODEM, {}).get("PrimarySimSlot", 0)) == slot:
            return
        log.info("ModemManager: SIM slot %d", slot)
        await self._command(path, MODEM, "SetPrimarySimSlot", slot)

    async def reconnect(self) -> None:
        """Not ModemManager's to do: NetworkManager fails its device when a bearer moves behind its back, and
        configures IP only on the bearers it connected itself (issue 21). The policy falls back to ``reset``."""
        self._require()
        raise DeviceUnsupported(
            "NetworkManager owns the data connection",
            where="modem",
            action='use driver = "networkmanager" for reconnections',
            key="modem.recovery.failed",
        )

    async def check_internet(self) -> bool:
        """Whether ModemManager has a data bearer up; whether the Internet answers through it is the connectivity
        policy's probe (ModemManager cannot tell)."""
        return self._state.connected

    def _require(self) -> str:
        if self._link.bus is None or self._path is None:
            raise DeviceError("no modem", where="modem", action="check the modem's USB cable", key="modem.absent")
        return self._path

    async def _command(self, path: str, iface: str, member: str, *args: Any) -> Any:
        return await self._link.command(CONTRACT, self.options.command_timeout, path, iface, member, *args)

    # ------------------------------------------------------------------------------------------- the bus
    async def _session(self) -> None:
        """While connected: find the modem, then again whenever a signal says so."""
        self._rescan.set()
        await self._rescans()

    async def _call(self, path: str, iface: str, member: str, *args: Any) -> Any:
        """A ModemManager method with the signatures of the shipped introspection; its one result (or None)."""
        return await self._link.ask(CONTRACT, path, iface, member, *args)

    # ------------------------------------------------------------------------------------------- modems
    async def _rescans(self) -> None:
        """One enumeration at a time; requests made while one runs are folded into the next."""
        while True:
            await self._rescan.wait()
            self._rescan.clear()
            try:
                objects = await self._call(MM_PATH, OBJECT_MANAGER, "GetManagedObjects")
            except DBusCallError as exc:
                if exc.name not in NOT_THERE:
                    log.warning("ModemManager: %s", exc)
                self._lost("ModemManager not running")
                continue
            self._path, self._props = None, {}
            for path, interfaces in sorted(objects.items()):
                if self._wanted(str(path), interfaces):
                    self._adopt(str(path), interfaces)
                    break
            else:
                self._lost("no modem")

    def _wanted(self, path: str, interfaces: dict[str, Any]) -> bool:
        if not path.startswith(MODEMS) or MODEM not in interfaces:
            return False
        wanted = self.options.modem
        imei = plain(interfaces[MODEM]).get("EquipmentIdentifier")
        return wanted is None or wanted in (path, path.rsplit("/", 1)[-1], imei)

    def _adopt(self, path: str, interfaces: dict[str, Any]) -> None:
        log.info("ModemManager: modem %s", path.rsplit("/", 1)[-1])
        self._path = path
        self._props = {iface: plain(props) for iface, props in interfaces.items()}
        self._publish()
        self._start_setup(path, set(self._props))

    def _start_setup(self, path: str, interfaces: set[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._setup(path, interfaces))
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _setup(self, path: str, interfaces: set[str]) -> None:
        """Ask for the extended signal figures at the profile's rate, and for GPS fixes and the serving cell when the
        profile wants them, on those of ``interfaces`` the modem has (again each time one appears: ModemManager
        exports Signal and Location only once the SIM is unlocked and the modem enabled)."""
        if self.options.signal_rate and SIGNAL in interfaces and SIGNAL in self._props:
            try:
                await self._call(path, SIGNAL, "Setup", self.options.signal_rate)
            except (DBusCallError, OSError) as exc:
                log.warning("ModemManager: Signal.Setup refused: %s", exc)
        if self.options.location and LOCATION in interfaces and LOCATION in self._props:
            location = self._props[LOCATION]
            enabled = int(location.get("Enabled", 0))
            capable = int(location.get("Capabilities", LOCATION_WANTED))
            sources = enabled | (LOCATION_WANTED & capable)  # add ours, keep what is on (Setup replaces the set)
            if sources == enabled and location.get("SignalsLocation", False):
                return
            try:
                await self._call(path, LOCATION, "Setup", sources, True)
            except (DBusCallError, OSError) as exc:
                log.warning("ModemManager: Location.Setup refused: %s", exc)

    def _lost(self, why: str) -> None:
        self._path, self._props = None, {}
        self._set(ModemState(present=False, detail=why))

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.interface == DBUS and msg.signature == "sss":
            if msg.body[0] != MM:
                return
            if msg.body[2]:
                self._rescan.set()
            else:
                log.warning("ModemManager left the bus")
                self._lost("ModemManager not running")
            return
        if not CONTRACT.expects(msg):
            return  # not one of ours, or not the shape the shipped introspection promises
        if msg.member == "PropertiesChanged":
            if msg.path != self._path:
                return
            iface, changed, invalidated = msg.body
            self._props.setdefault(iface, {}).update({name: plain(value) for name, value in changed.items()})
            if invalidated:
                self._rescan.set()  # values ModemManager will not send: read them all again
            self._publish()
        elif msg.member == "InterfacesAdded":
            path, interfaces = str(msg.body[0]), msg.body[1]
            if path == self._path:  # an interface the modem gained (Signal once enabled, Simple once registered)
                for iface, props in interfaces.items():
                    self._props.setdefault(iface, {}).update(plain(props))
                self._publish()
                self._start_setup(path, set(interfaces) & {SIGNAL, LOCATION})
            elif self._path is None and self._wanted(path, interfaces):
                self._adopt(path, interfaces)
        elif msg.member == "InterfacesRemoved":
            path, gone = str(msg.body[0]), msg.body[1]
            if path != self._path:
                return
            if MODEM in gone:
                log.warning("ModemManager: modem %s went away", path.rsplit("/", 1)[-1])
                self._lost("modem went away")
                self._rescan.set()  # another modem may be there already
            else:
                for iface in gone:
                    self._props.pop(iface, None)
                self._publish()

    # ------------------------------------------------------------------------------------------- state
    def _publish(self) -> None:
        if self._path is not None:
            self._set(modem_state(self._props))

    def _set(self, new: ModemState) -> None:
        before = self._state
        if new == before:
            return
        self._state = new
        if (before.signal, before.technology) != (new.signal, new.technology):
            self.ctx.emit(SignalChanged(new.signal, new.technology))
        self.ctx.emit(ModemChanged(new))
