"""A UPS or DC-UPS behind NUT's upsd, read over its TCP network protocol (``LIST VAR``) at a period from the profile.

A plain asyncio client: one connection, one request at a time, reconnecting when upsd restarts and reporting "no
data" meanwhile. It only reads variables; it must never send instant commands or set variables on the UPS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.backend_task import BackgroundTask
from drivers.power.report import NO_DATA, PowerReport, alarm_key
from kioskd.hal import DriverContext, DriverOptions, PowerState

log = logging.getLogger(__name__)

# ups.status flags that are alarms an agent must see (catalogue suffixes).
STATUS_ALARMS = {"LB": "low-battery", "RB": "replace-battery", "OVER": "overload"}
# upsd's answers that mean "the UPS is there but its data is not usable now" (the connection itself is fine).
NO_DATA_ERRORS = frozenset({"DATA-STALE", "DRIVER-NOT-CONNECTED", "UNKNOWN-UPS", "ACCESS-DENIED"})
MAX_LINE = 4096


def is_critical(status: list[str]) -> bool:
    """NUT's own rule (upsmon's ``is_ups_critical``, docs/man/upsmon.txt): ``FSD`` (the primary or the UPS forces a
    shutdown), or on battery with a low battery (``OB LB``) unless the UPS is calibrating (``CAL``). The UPS knows
    its battery better than its charge figure: ``OB LB`` at 100 % is critical, and so on a DC-UPS without
    ``battery.charge``."""
    flags = set(status)
    return "FSD" in flags or ({"OB", "LB"} <= flags and "CAL" not in flags)


class NutServerOptions(BaseModel):
    """The UPS is plugged into this PC: the image runs upsd and this NUT driver for it (``ups.conf``), from the
    profile (image-build/power/). kioskd is the one that shuts the PC down on its critical state; the image masks
    upsmon so that the two never race (see image-build/README.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    driver: str = Field(pattern=r"^[a-z0-9_-]{2,32}$", description="the NUT driver, e.g. usbhid-ups, nutdrv_qx")
    port: str = Field("auto", pattern=r"^[^\s\"]{1,128}$", description="the driver's port (`auto` for USB)")
    settings: dict[str, str] = Field(
        default_factory=dict, description='more ups.conf lines for this UPS, e.g. vendorid = "0463"'
    )

    @field_validator("settings")
    @classmethod
    def _plain(cls, value: dict[str, str]) -> dict[str, str]:
        for key, setting in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_.]{0,40}", key) or not re.fullmatch(r"[^\n\"\\]{0,128}", setting):
                raise ValueError(f"ups.conf setting {key!r} = {setting!r}: a lowercase name and a one-line value")
        return value


class NutOptions(DriverOptions):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(3493, ge=1, le=65535)
    ups: str = Field("ups", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="the UPS name in ups.conf")
    poll: float = Field(5.0, gt=0, description="seconds between two readings")
    timeout: float = Field(5.0, gt=0, description="seconds to wait for upsd to connect or answer")
    server: NutServerOptions | None = Field(
        None,
        description='the UPS is on this PC: { driver = "usbhid-ups", port = "auto", settings = { … } } (NUT driver, '
        "its port, more ups.conf lines); the image runs upsd on loopback and that driver, and masks upsmon "
        "(kioskd owns the shutdown)",
    )

    @model_validator(mode="after")
    def _local_server(self) -> NutOptions:
        if self.server is not None and self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("`server` describes a UPS on this PC: host must be 127.0.0.1 (upsd listens on loopback)")
        return self


class NutError(Exception):
    """upsd answered ``ERR <code>``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def split_line(line: str) -> list[str]:
    """The words of one protocol line; a double-quoted word may hold spaces, ``\\"`` and ``\\\\`` (NUT's quoting)."""
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        if line[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(line[i])
                i += 1
            words.append("".join(chars))
            i += 1
        else:
            start = i
            while i < n and line[i] != " ":
                i += 1
            words.append(line[start:i])
    return words


def power_state(variables: dict[str, str]) -> tuple[PowerState, list[str]]:
    """The state and active alarms that NUT variables describe (``ups.status``, ``battery.*``)."""
    status = variables.get("ups.status", "").split()
    if "WAIT" in status or not status:
        # upsd 2.8 says WAIT until its driver has given a first reading.
        return PowerState(available=False, detail="no data"), [NO_DATA]
    alarms = [name for flag, name in STATUS_ALARMS.items() if flag in status]
    charging = True if "CHRG" in status else False if "DISCHRG" in status or "OB" in status else None
    return (
        PowerState(
            available=True,
            shore=True if "OL" in status else False if "OB" in status else None,
            soc=_number(variables.get("battery.charge")),
            time_to_go=_number(variables.get("battery.runtime")),
            voltage=_number(variables.get("battery.voltage")),
            current=_number(variables.get("battery.current")),
            charging=charging,
            alarm=",".join(alarms) or None,
            detail=" ".join(status),
            critical=is_critical(status),
        ),
        [alarm_key(name) for name in alarms],
    )


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class NutPower:
    """A ``PowerSource`` reading one UPS from upsd.

    The poll period and timeouts are real seconds on the event loop: upsd and its driver live in real time, so the
    injected (possibly accelerated) clock must not pace them."""

    options_model: ClassVar[type[NutOptions]] = NutOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._report = PowerReport(ctx.emit)
        self._task = BackgroundTask("nut", "power", ctx.emit)
        self._since: float | None = None  # when start() ran, until the first reading
        self.connections = 0  # successful connections so far (a technician's view of upsd restarts)

    @property
    def state(self) -> PowerState:
        return self._report.state

    async def start(self) -> None:
        if not self._task.running:
            self._since = asyncio.get_running_loop().time()
            self._task.start(self._run)

    async def close(self) -> None:
        await self._task.close()
        self._report.forget()

    async def _run(self) -> None:
        opts = self.options
        failing = False
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(opts.host, opts.port, limit=MAX_LINE), opts.timeout
                )
            except (OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("upsd at %s:%d unreachable: %s", opts.host, opts.port, exc or "timeout")
                failing = True
                self._no_data()
                await asyncio.sleep(opts.poll)
                continue
            failing = False
            self.connections += 1
            try:
                await self._poll(reader, writer)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                # LimitOverrunError: a line longer than MAX_LINE, i.e. not upsd talking.
                log.warning("upsd at %s:%d lost: %s", opts.host, opts.port, exc or "timeout")
                self._no_data()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await asyncio.sleep(opts.poll)

    async def _poll(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opts = self.options
        while True:
            try:
                variables = await asyncio.wait_for(self._list_vars(reader, writer), opts.timeout)
            except NutError as exc:
                if exc.code not in NO_DATA_ERRORS:
                    raise OSError(f"upsd answered ERR {exc.code}") from None
                if exc.code in ("UNKNOWN-UPS", "ACCESS-DENIED"):
                    log.error("upsd refuses UPS %r: %s (check ups.conf / upsd.users)", opts.ups, exc.code)
                self._no_data()
            else:
                state, faults = power_state(variables)
                if state.available:
                    self._since = None
                    self._report.publish(state, faults)
                else:
                    self._no_data()
            await asyncio.sleep(opts.poll)

    async def _list_vars(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, str]:
        ups = self.options.ups
        writer.write(f"LIST VAR {ups}\n".encode())
        await writer.drain()
        first = await self._line(reader)
        if first[:1] == ["ERR"]:
            raise NutError(first[1] if len(first) > 1 else "UNKNOWN")
        if first[:3] != ["BEGIN", "LIST", "VAR"]:
            raise OSError(f"unexpected answer from upsd: {' '.join(first)[:80]!r}")
        variables: dict[str, str] = {}
        while True:
            words = await self._line(reader)
            if words[:3] == ["END", "LIST", "VAR"]:
                return variables
            if len(words) >= 4 and words[0] == "VAR" and words[1] == ups:
                variables[words[2]] = words[3]

    @staticmethod
    async def _line(reader: asyncio.StreamReader) -> list[str]:
        raw = await reader.readuntil(b"\n")
        return split_line(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _no_data(self) -> None:
        # upsd says WAIT or DATA-STALE for a few seconds after it or its driver starts: that is no fault yet.
        since = self._since
        starting = since is not None and asyncio.get_running_loop().time() - since < self.options.timeout
        self._report.publish(PowerState(available=False, detail="no data"), [] if starting else [NO_DATA])
