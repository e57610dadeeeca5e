"""The machine through systemd-logind on the system bus (dbus-fast): power off, a ``delay`` inhibitor the station
holds while a citizen's session is open or wiped, and logind's ``PrepareForShutdown(true)`` told to the station
(``ShutdownPrepared``) so that a shutdown started by anyone waits for the wipe.

It only calls ``PowerOff`` and ``Inhibit`` on ``org.freedesktop.login1.Manager`` and listens to its
``PrepareForShutdown``; it never reboots, suspends or touches sessions."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, ClassVar

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from pydantic import Field

from kioskd.hal import DeviceError, DriverContext, DriverOptions, ShutdownPrepared

log = logging.getLogger(__name__)

LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
PREPARE_RULE = f"type='signal',sender='{LOGIND}',interface='{MANAGER}',member='PrepareForShutdown',path='{LOGIND_PATH}'"


class LogindOptions(DriverOptions):
    bus_address: str | None = Field(None, description="a D-Bus address; default the system bus")
    who: str = Field("kioskd", min_length=1, description="the inhibitor's owner as `systemd-inhibit --list` shows")


class LogindInhibitLock:
    """The fd logind handed out: the inhibitor lasts as long as it is open."""

    def __init__(self, fd: int, why: str) -> None:
        self.fd: int | None = fd
        self.why = why

    def release(self) -> None:
        """Let the shutdown proceed; releasing twice is harmless."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        # A forgotten lock must not hold off a shutdown for the daemon's whole life.
        self.release()


class LogindHost:
    """A ``Host`` on logind.

    The connection is opened at ``start`` and reopened on the next call if the bus went away. Inhibitors are taken in
    ``delay`` mode, as the policy asks: logind waits at most ``InhibitDelayMaxSec`` (5 s by default) for them, so a
    van whose wipe takes longer should raise that setting in ``logind.conf``."""

    options_model: ClassVar[type[LogindOptions]] = LogindOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit = ctx.emit
        self._bus: MessageBus | None = None

    async def start(self) -> None:
        try:
            await self._connected()
        except DeviceError as exc:
            # The station can run without it; power_off and inhibit will say what is wrong when they are needed.
            log.warning("logind: %s", exc)

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()

    async def power_off(self) -> None:
        log.info("logind: powering off")
        await self._call("PowerOff", "b", [False])  # not interactive: no polkit prompt in a van

    async def inhibit(self, why: str) -> LogindInhibitLock:
        reply = await self._call("Inhibit", "ssss", ["shutdown:sleep", self.options.who, why, "delay"])
        fds = reply.unix_fds or []
        index = reply.body[0] if reply.body else None
        if not isinstance(index, int) or not 0 <= index < len(fds):
            for fd in fds:
                os.close(fd)
            raise DeviceError(
                "logind answered Inhibit without a file descriptor",
                where="host (logind)",
                action="check that the D-Bus daemon passes file descriptors",
            )
        for i, fd in enumerate(fds):
            if i != index:
                os.close(fd)
        return LogindInhibitLock(fds[index], why)

    async def _connected(self) -> MessageBus:
        if self._bus is not None and self._bus.connected:
            return self._bus
        address = self.options.bus_address
        try:
            if address:
                bus = MessageBus(bus_address=address, negotiate_unix_fd=True)
            else:
                bus = MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True)
            await bus.connect()
        except (OSError, EOFError) as exc:
            raise DeviceError(
                f"system bus not reachable: {exc}",
                where="host (logind)",
                action="check that dbus is running",
            ) from None
        bus.add_message_handler(self._on_message)
        # Listening before anything else: a shutdown announced while the station wipes must not be missed.
        await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[PREPARE_RULE],
            )
        )
        self._bus = bus
        return bus

    def _on_message(self, msg: Message) -> None:
        if (
            msg.message_type == MessageType.SIGNAL
            and msg.interface == MANAGER
            and msg.member == "PrepareForShutdown"
            and msg.body == [True]
        ):
            log.info("logind: the machine is shutting down")
            self._emit(ShutdownPrepared())

    async def _call(self, member: str, signature: str, body: list[Any]) -> Message:
        bus = await self._connected()
        reply = await bus.call(
            Message(
                destination=LOGIND,
                path=LOGIND_PATH,
                interface=MANAGER,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply is None or reply.message_type == MessageType.ERROR:
            name = "no reply" if reply is None else str(reply.error_name)
            text = "" if reply is None or not reply.body else f": {reply.body[0]}"
            raise DeviceError(
                f"logind refused {member} ({name}{text})",
                where="host (logind)",
                action="check that systemd-logind runs and that kioskd may call it (polkit)",
            )
        return reply
