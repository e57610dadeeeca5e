"""The kernel's power supplies (``/sys/class/power_supply``) through pyudev: a Mains supply's ``online`` is the shore,
a battery's ``capacity`` the charge; udev ``change`` events keep them current.

The udev monitor runs on pyudev's observer thread, which only snapshots attributes and hands them to the event loop;
no state is touched off the loop, and nothing here writes to sysfs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import pyudev
from pydantic import Field

from drivers.power.report import NO_DATA, PowerReport
from kioskd.hal import DeviceError, DriverContext, DriverOptions, PowerState

log = logging.getLogger(__name__)

SUBSYSTEM = "power_supply"
# Attributes worth a snapshot; the uevent's POWER_SUPPLY_<NAME> properties stand in where a file cannot be read.
ATTRIBUTES = (
    "type",
    "scope",
    "online",
    "capacity",
    "status",
    "voltage_now",
    "current_now",
    "power_now",
    "time_to_empty_now",
)
SHORE_TYPES = frozenset({"Mains", "USB", "USB_PD", "USB_C"})  # supplies whose `online` means external power


class SysfsOptions(DriverOptions):
    mains: str | None = Field(None, description="the shore supply's name (e.g. AC, ACAD); default the first Mains")
    battery: str | None = Field(None, description="the battery's name (e.g. BAT0); default the first Battery")


def snapshot(device: Any) -> dict[str, str]:
    """The attributes of one power_supply device as strings (read on the thread that got the device)."""
    values: dict[str, str] = {}
    for name in ATTRIBUTES:
        value: str | None
        try:
            value = device.attributes.asstring(name)
        except (KeyError, OSError, UnicodeDecodeError):
            value = None
        if value is None:
            value = device.properties.get(f"POWER_SUPPLY_{name.upper()}")
        if value is not None:
            values[name] = value.strip()
    return values


def _int(values: Mapping[str, str], name: str) -> int | None:
    try:
        return int(values[name])
    except (KeyError, ValueError):
        return None


class SysfsPower:
    """A ``PowerSource`` on the kernel's power supplies, kept from udev events on pyudev's observer thread."""

    options_model: ClassVar[type[SysfsOptions]] = SysfsOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._report = PowerReport(ctx.emit)
        self._supplies: dict[str, dict[str, str]] = {}  # sys_name → snapshot
        self._observer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = True

    @property
    def state(self) -> PowerState:
        return self._report.state

    async def start(self) -> None:
        if self._observer is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closed = False
        # Starting the monitor and listing touch sysfs and a netlink socket: quick, but still off the loop.
        try:
            self._observer = await loop.run_in_executor(None, self._open, loop)
        except OSError as exc:
            self._closed = True
            raise DeviceError(
                f"cannot watch the power supplies: {exc}",
                where="power (sysfs)",
                action="check that /sys is mounted and that udev runs",
            ) from None

    def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
        # libudev objects must not be shared between threads: the observer's thread gets a context of its own.
        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by(SUBSYSTEM)
        observer = pyudev.MonitorObserver(monitor, callback=self._on_udev, name="kioskd-power-udev")
        observer.daemon = True
        # Listen first, then list, and hand the listing over through the same queue as the events: the loop applies
        # them in the order they were handed over, so a change while listing is not lost behind the listing.
        observer.start()
        listing = pyudev.Context().list_devices(subsystem=SUBSYSTEM)
        supplies = {str(device.sys_name): snapshot(device) for device in listing}
        loop.call_soon_threadsafe(self._on_listing, supplies)
        return observer

    async def close(self) -> None:
        self._closed = True
        observer, self._observer = self._observer, None
        if observer is not None:
            await asyncio.get_running_loop().run_in_executor(None, observer.stop)
        self._report.forget()

    # ------------------------------------------------------------------------------------------- events
    def _on_udev(self, device: Any) -> None:
        """On pyudev's thread: snapshot, then hand over to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        action = device.action or "change"
        values = {} if action == "remove" else snapshot(device)
        with contextlib.suppress(RuntimeError):  # the loop closed since the check: the daemon is going down
            loop.call_soon_threadsafe(self._on_supply, action, str(device.sys_name), values)

    def _on_listing(self, supplies: dict[str, dict[str, str]]) -> None:
        if self._closed:
            return
        self._supplies = supplies
        self._publish()

    def _on_supply(self, action: str, name: str, values: dict[str, str]) -> None:
        if self._closed:
            return
        if action == "remove":
            self._supplies.pop(name, None)
        else:
            self._supplies[name] = values
        self._publish()

    # ------------------------------------------------------------------------------------------- readings
    def _pick(self, wanted: str | None, types: frozenset[str]) -> dict[str, str] | None:
        # scope=Device: the battery of a peripheral (a wireless keyboard's or mouse's, a game pad's) — it powers
        # that device, never the van; a mouse at 5 % must not shut the station down, even when named by mistake.
        supplies = {name: v for name, v in self._supplies.items() if v.get("scope", "").lower() != "device"}
        if wanted is not None:
            return supplies.get(wanted)
        for name in sorted(supplies):
            if supplies[name].get("type") in types:
                return supplies[name]
        return None

    def _publish(self) -> None:
        mains = self._pick(self.options.mains, SHORE_TYPES)
        battery = self._pick(self.options.battery, frozenset({"Battery", "UPS"}))
        if mains is None and battery is None:
            self._report.publish(PowerState(available=False, detail="no power supply"), [NO_DATA])
            return
        online = None if mains is None else _int(mains, "online")
        soc = ttg = voltage = current = power = None
        charging = None
        detail = ""
        if battery is not None:
            capacity = _int(battery, "capacity")
            soc = None if capacity is None or not 0 <= capacity <= 100 else float(capacity)
            seconds = _int(battery, "time_to_empty_now")
            ttg = None if seconds is None or seconds <= 0 else float(seconds)
            microvolts, microamps = _int(battery, "voltage_now"), _int(battery, "current_now")
            microwatts = _int(battery, "power_now")
            voltage = None if microvolts is None else microvolts / 1e6
            status = battery.get("status", "")
            detail = status.lower()
            charging = None if not status else status == "Charging"
            # The kernel gives current and power as magnitudes on most drivers: the sign comes from the status.
            sign = 1.0 if status == "Charging" else -1.0 if status == "Discharging" else 0.0
            current = None if microamps is None or not sign else sign * abs(microamps) / 1e6
            power = None if microwatts is None or not sign else sign * abs(microwatts) / 1e6
        self._report.publish(
            PowerState(
                available=True,
                shore=None if online is None else online > 0,
                soc=soc,
                time_to_go=ttg,
                voltage=voltage,
                current=current,
                power=power,
                charging=charging,
                detail=detail,
            ),
            [],
        )
