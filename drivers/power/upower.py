"""UPower over D-Bus (dbus-fast): the line-power device's ``Online`` is the shore (on a PC with only a USB UPS, which
has none, the UPS's charging state), the battery's ``Percentage`` and ``TimeToEmpty`` are the charge and the
time-to-go; changes arrive as ``PropertiesChanged`` signals.

It only reads UPower; it must not call methods that change anything (no ``Refresh``), and it never blocks the loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from dbus_fast import Message, MessageType
from pydantic import Field

from drivers.backend_task import BackgroundTask
from drivers.dbus_link import DBusCallError, DBusLink
from drivers.power.report import NO_DATA, PowerReport, alarm_key
from kioskd.hal import DriverContext, DriverOptions, PowerState

log = logging.getLogger(__name__)

UPOWER = "org.freedesktop.UPower"
UPOWER_PATH = "/org/freedesktop/UPower"
DEVICE_IFACE = "org.freedesktop.UPower.Device"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"

# UPower's device kinds and states (org.freedesktop.UPower.Device: Type, State, WarningLevel).
LINE_POWER, BATTERY, UPS = 1, 2, 3
CHARGING, DISCHARGING = 1, 2
# A UPS's State when there is no line-power device (a mini-PC on a USB UPS): what it says of the mains behind it.
# Empty (3) is a UPS that gave all it had: off shore. Unknown (0) says nothing.
UPS_ON_SHORE = {1: True, 2: False, 3: False, 4: True, 5: True, 6: True}
WARNING_LOW = 3  # Low, Critical and Action all mean "plug in now"

# Match rules: dbusmock's introspection lacks PropertiesChanged, and the low-level handler below needs no proxy.
MATCH_RULES = (
    f"type='signal',sender='{UPOWER}',interface='{PROPERTIES}',member='PropertiesChanged',path_namespace='{UPOWER_PATH}'",
    f"type='signal',sender='{UPOWER}',interface='{UPOWER}',member='DeviceAdded'",
    f"type='signal',sender='{UPOWER}',interface='{UPOWER}',member='DeviceRemoved'",
    f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',arg0='{UPOWER}'",
)


class UPowerOptions(DriverOptions):
    bus_address: str | None = Field(None, description="a D-Bus address; default the system bus")
    line_power: str | None = Field(None, description="the line-power device (path or its last part); default the first")
    battery: str | None = Field(None, description="the battery (path or its last part); default the first supply")
    reconnect: float = Field(5.0, gt=0, description="seconds between attempts to reach the bus")


class UPowerPower:
    """A ``PowerSource`` on UPower's line-power device and battery.

    Device properties are read once (``EnumerateDevices`` + ``GetAll``) and then kept current from signals; a
    re-enumeration runs when devices come or go or when UPower itself restarts (``NameOwnerChanged``)."""

    options_model: ClassVar[type[UPowerOptions]] = UPowerOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._report = PowerReport(ctx.emit)
        self._link = DBusLink(
            "UPower",
            self.options.bus_address,
            MATCH_RULES,
            self._on_message,
            self._session,
            self._lost,
            self.options.reconnect,
        )
        self._devices: dict[str, dict[str, Any]] = {}  # path → properties of org.freedesktop.UPower.Device
        self._present = False  # UPower answered
        self._task = BackgroundTask("upower", "power", ctx.emit)
        self._rescan = asyncio.Event()

    @property
    def state(self) -> PowerState:
        return self._report.state

    async def start(self) -> None:
        self._task.start(self._link.run)

    async def close(self) -> None:
        await self._task.close()
        self._link.disconnect()
        self._report.forget()

    # ------------------------------------------------------------------------------------------- the bus
    async def _session(self) -> None:
        """While connected: read everything once, then again whenever a signal says so."""
        self._rescan.set()
        await self._rescans()

    def _lost(self, why: str) -> None:
        self._present = False
        self._devices.clear()
        self._no_data()

    async def _call(
        self, dest: str, path: str, iface: str, member: str, sig: str = "", body: list[Any] | None = None
    ) -> Any:
        reply = await self._link.call(
            Message(destination=dest, path=path, interface=iface, member=member, signature=sig, body=body or [])
        )
        return reply.body

    # ------------------------------------------------------------------------------------------- devices
    async def _rescans(self) -> None:
        """One enumeration at a time; requests made while one runs are folded into the next."""
        while True:
            await self._rescan.wait()
            self._rescan.clear()
            try:
                await self._enumerate()
            except DBusCallError as exc:
                if exc.name not in (
                    "org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.NameHasNoOwner",
                ):
                    log.warning("UPower: %s", exc)
                self._present = False
                self._devices.clear()
            self._publish()

    async def _enumerate(self) -> None:
        (paths,) = await self._call(UPOWER, UPOWER_PATH, UPOWER, "EnumerateDevices")
        devices: dict[str, dict[str, Any]] = {}
        for path in paths:
            try:
                (props,) = await self._call(UPOWER, str(path), PROPERTIES, "GetAll", "s", [DEVICE_IFACE])
            except DBusCallError:
                continue  # removed between the two calls; its DeviceRemoved is on its way
            devices[str(path)] = {name: variant.value for name, variant in props.items()}
        self._devices = devices
        self._present = True

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.member == "PropertiesChanged" and msg.signature == "sa{sv}as" and msg.body[0] == DEVICE_IFACE:
            props = self._devices.get(str(msg.path))
            if props is None or msg.body[2]:
                self._rescan.set()  # a device we have not read yet, or values UPower will not send: read all
                return
            props.update({name: variant.value for name, variant in msg.body[1].items()})
            self._publish()
        elif msg.interface == UPOWER and msg.member in ("DeviceAdded", "DeviceRemoved"):
            self._rescan.set()
        elif msg.member == "NameOwnerChanged" and msg.signature == "sss" and msg.body[0] == UPOWER:
            if msg.body[2]:
                self._rescan.set()
            else:
                log.warning("UPower left the bus")
                self._present = False
                self._devices.clear()
                self._publish()

    def _pick(self, wanted: str | None, kinds: tuple[int, ...]) -> dict[str, Any] | None:
        for path, props in self._devices.items():
            if wanted is not None:
                if path == wanted or path.rsplit("/", 1)[-1] == wanted:
                    return props
                continue
            kind = props.get("Type")
            # dbusmock's AddAC gives no Type; a device with Online is line power whatever UPower version made it.
            untyped_line = kind is None and LINE_POWER in kinds and "Online" in props
            # A battery counts only if it feeds the machine (not a mouse's or a phone's).
            if untyped_line or (kind in kinds and (kind == LINE_POWER or props.get("PowerSupply", True))):
                return props
        return None

    def _publish(self) -> None:
        line = self._pick(self.options.line_power, (LINE_POWER,))
        battery = self._pick(self.options.battery, (BATTERY, UPS))
        if not self._present or (line is None and battery is None):
            self._no_data()
            return
        shore = None if line is None or "Online" not in line else bool(line["Online"])
        if line is None and battery is not None and battery.get("Type") == UPS:
            # No line-power device (UPower makes none for a USB UPS): the UPS's own state is the shore.
            shore = UPS_ON_SHORE.get(int(battery.get("State") or 0))
        soc = ttg = voltage = power = None
        charging = None
        alarms: list[str] = []
        if battery is not None:
            soc = _positive(battery.get("Percentage"), zero=True)
            ttg = _positive(battery.get("TimeToEmpty"))  # 0 means "unknown" to UPower
            voltage = _positive(battery.get("Voltage"))
            state = battery.get("State")
            charging = None if state is None else state == CHARGING
            rate = _positive(battery.get("EnergyRate"))
            if rate is not None and state in (CHARGING, DISCHARGING):
                power = rate if state == CHARGING else -rate
            if (battery.get("WarningLevel") or 0) >= WARNING_LOW:
                alarms.append("low-battery")
        self._report.publish(
            PowerState(
                available=True,
                shore=shore,
                soc=soc,
                time_to_go=ttg,
                voltage=voltage,
                power=power,
                charging=charging,
                alarm=",".join(alarms) or None,
                detail="" if battery is None else str(battery.get("Model", "")),
            ),
            [alarm_key(name) for name in alarms],
        )

    def _no_data(self) -> None:
        self._report.publish(PowerState(available=False, detail="no data"), [NO_DATA])


def _positive(value: Any, zero: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value > 0 or (zero and value == 0):
        return float(value)
    return None
