"""Victron VE.Direct over a serial port: battery monitors, chargers and inverters that stream text blocks every second.

It owns the port (raw 8N1 through termios, read with the event loop's ``add_reader``), reopens it when a USB adapter
comes back, and reports "no data" when the port vanishes or stays silent. Parsing lives in ``vedirect_protocol``;
this module must not interpret bytes itself."""

from __future__ import annotations

import asyncio
import logging
import os
import termios
from dataclasses import asdict
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.backend_task import BackgroundTask
from drivers.power.report import NO_DATA, PowerReport, alarm_key
from drivers.power.vedirect_protocol import Reading, TextParser, decode
from kioskd.hal import DriverContext, DriverOptions, PowerState

log = logging.getLogger(__name__)


class ShoreMapping(BaseModel):
    """Which VE.Direct field says the van is on shore power, for devices that know (an inverter/charger, a charger).

    ``on`` lists the values that mean "shore" (e.g. ``CS`` 3–7 and 11 on a Phoenix Smart charger, which only charges
    from the grid); ``min`` is a threshold for a numeric field (raw units, e.g. an AC input voltage in 0.01 V)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=16)
    on: tuple[str, ...] = ()
    min: float | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> ShoreMapping:
        if bool(self.on) == (self.min is not None):
            raise ValueError("give either `on` (values meaning shore) or `min` (a threshold), not both or neither")
        return self

    def shore(self, fields: dict[str, str]) -> bool | None:
        value = fields.get(self.label)
        if value is None:
            return None
        if self.on:
            return value.strip() in self.on
        try:
            return float(value) >= (self.min or 0.0)
        except ValueError:
            return None


class VeDirectOptions(DriverOptions):
    serial: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]{4,32}$",
        description="the Victron cable's serial number (HQ…): the port is then /dev/vedirect-<serial>, the name "
        "systemd/70-kioskd.rules gives it, so two cables never swap",
    )
    port: str | None = Field(
        None, min_length=1, description="the serial device, e.g. /dev/serial/by-id/usb-VictronEnergy_…"
    )
    baud: int = Field(19200, description="VE.Direct is 19200 baud; other rates only for bridges")
    timeout: float = Field(5.0, gt=0, description="seconds without a valid block before the reading is no data")
    reopen: float = Field(5.0, gt=0, description="seconds between attempts to open a missing port")
    shore: ShoreMapping | None = None

    @model_validator(mode="after")
    def _one_port(self) -> VeDirectOptions:
        if (self.serial is None) == (self.port is None):
            raise ValueError("name the cable by `serial` (its serial number, HQ…) or give its `port`, not both")
        return self

    @property
    def device(self) -> str:
        """The path the backend opens."""
        return self.port if self.port is not None else f"/dev/vedirect-{self.serial}"

    @field_validator("baud")
    @classmethod
    def _known_rate(cls, value: int) -> int:
        if not hasattr(termios, f"B{value}"):
            raise ValueError(f"{value} is not a serial rate this system knows")
        return value


class VeDirectPower:
    """A ``PowerSource`` on one VE.Direct port.

    Devices split their fields over several blocks (a BMV sends its live values, then its history), so the fields of
    the latest blocks are merged and forgotten only when the data is lost. Hardware speaks in real seconds, so the
    silence timeout runs on the event loop's time, not on the injected (possibly accelerated) clock."""

    options_model: ClassVar[type[VeDirectOptions]] = VeDirectOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self.parser = TextParser()
        self.reading = Reading()
        self._report = PowerReport(ctx.emit)
        self._fields: dict[str, str] = {}
        self._task = BackgroundTask("vedirect", "power", ctx.emit)
        self._watchdog: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[None] | None = None

    @property
    def state(self) -> PowerState:
        return self._report.state

    @property
    def counters(self) -> dict[str, int]:
        """The parser's counters (valid blocks, bad checksums, HEX frames, garbage …) for a technician."""
        return asdict(self.parser.counters)

    async def start(self) -> None:
        self._task.start(self._run)

    async def close(self) -> None:
        await self._task.close()
        self._disarm()
        self._report.forget()

    # ------------------------------------------------------------------------------------------- the port
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            try:
                fd = self._open()
            except OSError as exc:
                if not failing:
                    log.warning("VE.Direct port %s cannot be opened: %s", self.options.device, exc)
                failing = True
                self._no_data()
            else:
                failing = False
                lost: asyncio.Future[None] = loop.create_future()
                self._lost = lost
                loop.add_reader(fd, self._readable, fd)
                self._arm()
                try:
                    await lost
                    log.warning("VE.Direct port %s went away", self.options.device)
                finally:
                    loop.remove_reader(fd)
                    os.close(fd)
                    self._lost = None
                self._no_data()
            await asyncio.sleep(self.options.reopen)

    def _open(self) -> int:
        fd = os.open(self.options.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            attrs = termios.tcgetattr(fd)
            speed = getattr(termios, f"B{self.options.baud}")
            # Raw 8N1, no flow control: the checksum byte may be any value, so no byte may be translated or eaten.
            attrs[0] = termios.IGNBRK  # iflag
            attrs[1] = 0  # oflag
            attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # cflag
            attrs[3] = 0  # lflag: no echo, no canonical lines, no signals
            attrs[4] = attrs[5] = speed
            attrs[6][termios.VMIN] = 1
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (OSError, termios.error) as exc:
            os.close(fd)
            raise OSError(f"not a serial port: {exc}") from None
        return fd

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the adapter was unplugged (or the pty's other end closed)
        if not data:
            if self._lost is not None and not self._lost.done():
                self._lost.set_result(None)
            return
        for block in self.parser.feed(data):
            self._fields.update(block)
            self._arm()
            self._publish()

    # ------------------------------------------------------------------------------------------- readings
    def _publish(self) -> None:
        reading = decode(self._fields)
        self.reading = reading
        mapping = self.options.shore
        self._report.publish(
            PowerState(
                available=True,
                shore=None if mapping is None else mapping.shore(self._fields),
                soc=reading.soc,
                time_to_go=reading.time_to_go,
                voltage=reading.voltage,
                current=reading.current,
                power=reading.power,
                charging=reading.charging,
                alarm=",".join(reading.alarms) or None,
                detail=reading.detail,
            ),
            [*(alarm_key(name) for name in reading.alarms), *reading.faults],
        )

    def _no_data(self) -> None:
        self._disarm()
        self._fields.clear()
        self.reading = Reading()
        self._report.publish(PowerState(available=False, detail="no data"), [NO_DATA])

    def _arm(self) -> None:
        self._disarm()
        self._watchdog = asyncio.get_running_loop().call_later(self.options.timeout, self._no_data)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
