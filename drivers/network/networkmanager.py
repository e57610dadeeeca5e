"""The van's uplinks through NetworkManager on the system bus (dbus-fast, asyncio), as a ``Modem`` backend that
also offers the ``Uplinks`` contract: NetworkManager owns every connection, kioskd writes them from the profile.

At start it creates or updates one connection per uplink of the profile (``Settings.AddConnection`` /
``Connection.Update``: APN, SIM PIN from its file, interface, route metric by order of preference), follows which
are active (PropertiesChanged), moves the traffic by route metrics (``Update`` + ``Device.Reapply``) and recovers an
uplink by ``DeactivateConnection``/``ActivateConnection``. Each modem is read through the ModemManager backend
(registration, operator, signal, cell, location), whose ``Modem.Reset`` is the second recovery step and whose
``SetPrimarySimSlot`` moves a dual-SIM modem to the SIM of the uplink preferred. It never connects a bearer through
ModemManager, never blocks and holds no switching rule (the connectivity policy's)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from dbus_fast import Message, MessageType, Variant
from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.backend_task import BackgroundTask
from drivers.dbus_link import Contract, DBusCallError, DBusLink, match_rules, plain
from kioskd.hal import (
    DeviceError,
    DriverContext,
    DriverOptions,
    Event,
    Modem,
    ModemChanged,
    ModemState,
    SignalChanged,
    SimSlots,
    Uplink,
    UplinkKind,
)

log = logging.getLogger(__name__)

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
SETTINGS_PATH = NM_PATH + "/Settings"
SETTINGS = NM + ".Settings"
CONNECTION = NM + ".Settings.Connection"
ACTIVE = NM + ".Connection.Active"
DEVICE = NM + ".Device"
ACTIVATED = 2  # NM_ACTIVE_CONNECTION_STATE_ACTIVATED
NO_OBJECT = "/"
UUID_NAMESPACE = uuid.UUID("6f1e2c1a-4b7d-5a39-9a51-6b0c6d9e2a21")  # kioskd's uplinks: stable uuids per name
CONNECTION_TYPES: dict[UplinkKind, str] = {"gsm": "gsm", "ethernet": "802-3-ethernet", "wifi": "802-11-wireless"}

CONTRACT = Contract(NM, Path(__file__).with_name("networkmanager1.xml"))
MATCH_RULES = match_rules(NM, NM_PATH)


class UplinkOptions(BaseModel):
    """``[[devices.modem.uplinks]]``: one way to the Internet, in order of preference (the first is preferred)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="as the atlas shows it")
    kind: UplinkKind = Field("gsm", description="gsm (a modem's SIM), ethernet or wifi")
    interface: str | None = Field(
        None, min_length=1, max_length=15, description="the NetworkManager interface (cdc-wdm0, eth0, wlan0)"
    )
    apn: str | None = Field(None, min_length=1, max_length=100, description="gsm: the SIM operator's APN")
    pin_file: Path | None = Field(None, description="gsm: a file holding the SIM PIN (never the profile)")
    modem: str | None = Field(
        None, description="gsm: the ModemManager modem (object path, its last part, or its IMEI for a dual-SIM one)"
    )
    sim_slot: int | None = Field(
        None, ge=1, le=4, description="gsm, dual-SIM modem: the slot of this uplink's SIM (another uplink: the other)"
    )
    operator_id: str | None = Field(
        None, pattern=r"^[0-9]{5,6}$", description="gsm: the SIM's MCCMNC; NetworkManager uses it on that SIM only"
    )
    ssid: str | None = Field(None, min_length=1, max_length=32, description="wifi: the network's name")
    psk_file: Path | None = Field(None, description="wifi: a file holding the WPA passphrase")

    @model_validator(mode="after")
    def _fits_kind(self) -> UplinkOptions:
        if self.kind == "gsm" and self.apn is None:
            raise ValueError("a gsm uplink needs its apn")
        if self.kind == "wifi" and self.ssid is None:
            raise ValueError("a wifi uplink needs its ssid")
        if self.kind != "gsm" and (self.apn or self.pin_file or self.modem or self.sim_slot or self.operator_id):
            raise ValueError("apn, pin_file, modem, sim_slot and operator_id are for gsm uplinks")
        return self


class NetworkManagerOptions(DriverOptions):
    bus_address: str | None = Field(None, description="NetworkManager's D-Bus address; default the system bus")
    modem_bus_address: str | None = Field(None, description="ModemManager's D-Bus address; default the system bus")
    uplinks: tuple[UplinkOptions, ...] = Field(min_length=1, description="the uplinks, preferred first")
    metric_base: int = Field(100, ge=0, le=100_000, description="route metric of the uplink in use")
    metric_step: int = Field(100, ge=1, le=10_000, description="route metric added per place behind it")
    signal_rate: int = Field(30, ge=0, le=3600, description="seconds between RSRP/RSRQ/SINR refreshes; 0: off")
    location: bool = Field(False, description="follow the modems' GPS and serving cell to name the stop")
    command_timeout: float = Field(120, gt=0, le=600, description="seconds an activation or reset may take")
    reconnect: float = Field(5.0, gt=0, description="seconds between attempts to reach the bus")

    @model_validator(mode="after")
    def _unique(self) -> NetworkManagerOptions:
        names = [uplink.name for uplink in self.uplinks]
        if len(set(names)) != len(names):
            raise ValueError(f"uplink names must be unique, got {', '.join(names)}")
        slots = [(uplink.modem, uplink.sim_slot) for uplink in self.uplinks if uplink.sim_slot is not None]
        if len(set(slots)) != len(slots):
            raise ValueError("two uplinks name the same SIM slot of the same modem")
        return self


def connection_id(name: str) -> str:
    return f"kioskd-{name}"


def connection_settings(uplink: UplinkOptions, metric: int, secret: str | None) -> dict[str, dict[str, Variant]]:
    """NetworkManager's settings for ``uplink`` (every key kioskd owns; ``secret`` is the PIN or passphrase)."""
    connection = {
        "id": Variant("s", connection_id(uplink.name)),
        "uuid": Variant("s", str(uuid.uuid5(UUID_NAMESPACE, uplink.name))),
        "type": Variant("s", CONNECTION_TYPES[uplink.kind]),
    }  # autoconnect left at NetworkManager's default (yes): NetworkManager brings every uplink up by itself
    if uplink.interface:
        connection["interface-name"] = Variant("s", uplink.interface)
    settings: dict[str, dict[str, Variant]] = {"connection": connection}
    if uplink.kind == "gsm":
        gsm = {"apn": Variant("s", str(uplink.apn))}
        if secret:
            gsm["pin"] = Variant("s", secret)
        if uplink.operator_id:  # a dual-SIM modem: this connection comes up on its own SIM only
            gsm["sim-operator-id"] = Variant("s", uplink.operator_id)
        settings["gsm"] = gsm
    elif uplink.kind == "wifi":
        settings["802-11-wireless"] = {
            "ssid": Variant("ay", str(uplink.ssid).encode()),
            "mode": Variant("s", "infrastructure"),
        }
        if secret:
            settings["802-11-wireless-security"] = {"key-mgmt": Variant("s", "wpa-psk"), "psk": Variant("s", secret)}
    for family in ("ipv4", "ipv6"):
        settings[family] = {"method": Variant("s", "auto"), "route-metric": Variant("x", metric)}
    return settings


def _read_secret(path: Path | None) -> str | None:
    return None if path is None else path.read_text(encoding="utf-8").strip() or None


class NetworkManagerUplinks:
    """A ``Modem`` (the uplink in use, or the first modem) and ``Uplinks`` (all of them) over NetworkManager."""

    options_model: ClassVar[type[NetworkManagerOptions]] = NetworkManagerOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self.ctx = ctx
        self._order = tuple(uplink.name for uplink in self.options.uplinks)
        self._config = {uplink.name: uplink for uplink in self.options.uplinks}
        self._preferred = self._order[0]
        self._connections: dict[str, str] = {}  # uplink → settings connection path
        self._active: dict[str, tuple[str, str, str]] = {}  # uplink → (active path, device path, interface)
        self._metrics: dict[str, int] = {}
        self._readers: dict[str, Modem] = {}  # modem (as the profile names it, "" the first) → its reader
        self._read: dict[str, ModemState] = {}  # modem → what its reader saw
        self._modem_of = {u.name: u.modem or "" for u in self.options.uplinks if u.kind == "gsm"}
        for uplink in self.options.uplinks:
            if uplink.kind == "gsm" and self._modem_of[uplink.name] not in self._readers:
                options: dict[str, Any] = {
                    "signal_rate": self.options.signal_rate,
                    "location": self.options.location,
                    "command_timeout": self.options.command_timeout,
                    "reconnect": self.options.reconnect,
                }
                if self.options.modem_bus_address:
                    options["bus_address"] = self.options.modem_bus_address
                if uplink.modem:
                    options["modem"] = uplink.modem
                key = self._modem_of[uplink.name]
                self._readers[key] = ctx.build_part(
                    "modem", "modemmanager", options, self._reader_emit(key), f"uplinks.{uplink.name}"
                )
        self._state = ModemState(detail="NetworkManager not reached yet")
        self._uplinks: tuple[Uplink, ...] = ()
        self._nm_up = False
        self._link = DBusLink(
            "NetworkManager",
            self.options.bus_address,
            MATCH_RULES,
            self._on_message,
            self._session,
            self._lost,
            self.options.reconnect,
        )
        self._task = BackgroundTask("networkmanager")
        self._refresh = asyncio.Event()
        self._state = self._view("NetworkManager not reached yet")  # built without a word: no event yet

    # ------------------------------------------------------------------------------------------- contracts
    @property
    def state(self) -> ModemState:
        return self._state

    @property
    def uplinks(self) -> tuple[Uplink, ...]:
        return self._uplinks

    async def start(self) -> None:
        for reader in self._readers.values():
            await reader.start()
        self._task.start(self._link.run)

    async def close(self) -> None:
        await self._task.close()
        self._link.disconnect()
        for reader in self._readers.values():
            await reader.close()

    async def check_internet(self) -> bool:
        """Whether NetworkManager has the uplink in use active; the probe says whether the Internet answers."""
        return self._state.connected

    async def reconnect(self) -> None:
        await self.reconnect_uplink(self._modem_uplink())

    async def reset(self) -> None:
        await self.reset_uplink(self._modem_uplink())

    async def prefer(self, name: str) -> None:
        """``name`` carries the traffic: the lowest route metric, the others behind it in the profile's order; on a
        dual-SIM modem at another slot, the slot of its SIM first (the modem comes back on it after a new probe)."""
        self._known(name)
        slot, key = self._config[name].sim_slot, self._modem_of.get(name)
        reader = self._readers.get(key) if key is not None else None
        read = self._read.get(key) if key is not None else None
        if slot is not None and read is not None and read.sim_slot not in (None, slot):
            if not isinstance(reader, SimSlots):
                raise DeviceError(f"modem of uplink {name} cannot switch SIM", where=f"uplink {name}",
                                  key="modem.recovery.failed")  # fmt: skip
            await reader.set_sim_slot(slot)
        self._preferred = name
        await self._write_metrics()
        self._publish()

    async def reconnect_uplink(self, name: str) -> None:
        """Down and up again, through NetworkManager (which brings the bearer and its IP configuration)."""
        self._known(name)
        connection = self._connections.get(name)
        if self._link.bus is None or connection is None:
            raise DeviceError(
                "NetworkManager not reached", where=f"uplink {name}", action="check NetworkManager", key="modem.absent"
            )
        active = self._active.get(name)
        device = active[1] if active else NO_OBJECT
        if active is not None:
            try:
                await self._command(NM_PATH, NM, "DeactivateConnection", active[0])
            except DeviceError as exc:
                log.info("NetworkManager: %s already down (%s)", name, exc.what)
        log.info("NetworkManager: activating uplink %s", name)
        await self._command(NM_PATH, NM, "ActivateConnection", connection, device, NO_OBJECT)
        self._refresh.set()

    async def reset_uplink(self, name: str) -> None:
        self._known(name)
        reader = self._readers.get(self._modem_of.get(name, "-"))
        if reader is None:
            raise DeviceError(
                f"uplink {name} has no modem to reset", where=f"uplink {name}", key="modem.recovery.failed"
            )
        await reader.reset()

    def _known(self, name: str) -> None:
        if name not in self._config:
            raise DeviceError(f"no uplink {name!r}", where="modem", key="modem.recovery.failed")

    def _modem_uplink(self) -> str:
        """The uplink the single-link contract means: the one in use when it is a modem, else the first modem."""
        in_use = self._state.uplink
        if in_use in self._modem_of:
            return in_use
        return next(iter(self._modem_of), self._order[0])

    # ------------------------------------------------------------------------------------------- the bus
    async def _call(self, path: str, iface: str, member: str, *args: Any) -> Any:
        """A NetworkManager method with the signatures of the shipped introspection; its one result (or None)."""
        return await self._link.ask(CONTRACT, path, iface, member, *args)

    async def _command(self, path: str, iface: str, member: str, *args: Any) -> Any:
        return await self._link.command(CONTRACT, self.options.command_timeout, path, iface, member, *args)

    async def _props(self, path: str, iface: str) -> dict[str, Any]:
        return await self._link.properties(CONTRACT, path, iface)

    async def _session(self) -> None:
        """While connected: write the profile's connections, then keep the view of the active ones current."""
        try:
            await self._write_connections()
        except (DBusCallError, OSError) as exc:
            log.warning("NetworkManager: cannot write the uplinks' connections: %s", exc)
            self._lost("NetworkManager refused the connections")
            return
        self._nm_up = True
        self._refresh.set()
        while True:
            await self._refresh.wait()
            self._refresh.clear()
            try:
                await self._read_active()
            except (DBusCallError, OSError) as exc:
                log.warning("NetworkManager: %s", exc)
            self._publish()

    def _ranked_metrics(self) -> dict[str, int]:
        ranked = [self._preferred, *(name for name in self._order if name != self._preferred)]
        base, step = self.options.metric_base, self.options.metric_step
        return {name: base + rank * step for rank, name in enumerate(ranked)}

    async def _settings_of(self, name: str, metric: int) -> dict[str, dict[str, Variant]]:
        uplink = self._config[name]
        secret = await asyncio.to_thread(_read_secret, uplink.pin_file if uplink.kind == "gsm" else uplink.psk_file)
        return connection_settings(uplink, metric, secret)

    async def _write_connections(self) -> None:
        """Create the uplinks' connections NetworkManager lacks, update those it has (found by their id)."""
        found: dict[str, str] = {}
        for path in await self._call(SETTINGS_PATH, SETTINGS, "ListConnections") or []:
            settings = plain(await self._call(str(path), CONNECTION, "GetSettings"))
            found[str(settings.get("connection", {}).get("id", ""))] = str(path)
        metrics = self._ranked_metrics()
        for name in self._order:
            settings = await self._settings_of(name, metrics[name])
            path = found.get(connection_id(name))
            if path is None:
                path = str(await self._call(SETTINGS_PATH, SETTINGS, "AddConnection", settings))
                log.info("NetworkManager: added the connection of uplink %s", name)
            else:
                await self._call(path, CONNECTION, "Update", settings)
                log.info("NetworkManager: updated the connection of uplink %s", name)
            self._connections[name] = path
        self._metrics = metrics

    async def _write_metrics(self) -> None:
        """The new order's metrics on each connection that changes, applied at once to its device (``Reapply``)."""
        metrics = self._ranked_metrics()
        for name in self._order:
            if self._metrics.get(name) == metrics[name] or name not in self._connections:
                continue
            settings = await self._settings_of(name, metrics[name])
            await self._command(self._connections[name], CONNECTION, "Update", settings)
            self._metrics[name] = metrics[name]
            active = self._active.get(name)
            if active is not None:
                try:  # the running device takes the new metric without going down
                    await self._command(active[1], DEVICE, "Reapply", {}, 0, 0)
                except DeviceError as exc:
                    log.warning("NetworkManager: Reapply on %s: %s", name, exc.what)

    async def _read_active(self) -> None:
        manager = await self._props(NM_PATH, NM)
        by_connection = {path: name for name, path in self._connections.items()}
        active: dict[str, tuple[str, str, str]] = {}
        for path in manager.get("ActiveConnections", []):
            try:
                props = await self._props(str(path), ACTIVE)
            except DBusCallError:
                continue  # gone between the two reads
            name = by_connection.get(str(props.get("Connection", "")))
            devices = props.get("Devices") or []
            if name is None or int(props.get("State", 0)) != ACTIVATED or not devices:
                continue
            device = await self._props(str(devices[0]), DEVICE)
            interface = str(device.get("IpInterface") or device.get("Interface") or "")
            active[name] = (str(path), str(devices[0]), interface)
        self._active = active

    def _lost(self, why: str) -> None:
        self._nm_up = False
        self._active = {}
        self._publish(why)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "NameOwnerChanged" and msg.signature == "sss":
            if msg.body[0] == NM and not msg.body[2]:
                log.warning("NetworkManager left the bus")
                self._lost("NetworkManager not running")
            elif msg.body[0] == NM:
                self._link.disconnect()  # a new NetworkManager: the link starts a fresh session, connections again
            return
        if msg.member == "PropertiesChanged" and self._nm_up and CONTRACT.expects(msg):
            self._refresh.set()

    # ------------------------------------------------------------------------------------------- state
    def _reader_emit(self, key: str) -> Any:
        def emit(event: Event) -> None:
            if isinstance(event, ModemChanged):
                self._read[key] = event.state
                self._publish()
            elif not isinstance(event, SignalChanged):
                self.ctx.emit(event)  # a fault of the modem itself

        return emit

    def _publish(self, why: str = "") -> None:
        new, before = self._view(why), self._state
        if new == before:
            return
        self._state = new
        if (before.signal, before.technology) != (new.signal, new.technology):
            self.ctx.emit(SignalChanged(new.signal, new.technology))
        self.ctx.emit(ModemChanged(new))

    def _view(self, why: str) -> ModemState:
        """The modem state of the uplink in use (or the first modem's), with every uplink beside it."""
        uplinks = []
        for name in self._order:
            config = self._config[name]
            read = self._read.get(self._modem_of.get(name, "-"))
            standby = config.sim_slot is not None and read is not None and read.sim_slot not in (None, config.sim_slot)
            if standby:
                read = None  # what the modem reads is the other SIM's
            active = self._active.get(name)
            uplinks.append(
                Uplink(
                    name=name,
                    kind=config.kind,
                    interface=active[2] if active else None,
                    active=active is not None,
                    registered=read is not None and read.registration in ("home", "roaming")
                    if config.kind == "gsm"
                    else True,
                    operator=read.operator if read else None,
                    signal=read.signal if read else None,
                    technology=read.technology if read else "none",
                    cell=read.cell if read else None,
                    sim_slot=config.sim_slot,
                    standby=standby,
                )
            )
        self._uplinks = tuple(uplinks)
        metrics = self._ranked_metrics()
        carrying = [u for u in sorted(uplinks, key=lambda u: metrics[u.name]) if u.active]
        in_use = carrying[0].name if carrying else None
        modem_name = in_use if in_use in self._modem_of else next(iter(self._modem_of), None)
        base = self._read.get(self._modem_of[modem_name]) if modem_name else None
        if base is None:
            # no modem uplink read yet; with wired/Wi-Fi uplinks only, NetworkManager is the whole story
            base = ModemState(present=not self._readers and self._nm_up, registration="home", detail=why or "no modem")
        return replace(
            base, connected=in_use is not None, uplink=in_use, uplinks=self._uplinks, detail=why or base.detail
        )
