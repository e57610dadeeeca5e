"""One D-Bus connection kept up for a backend (dbus-fast, asyncio): connect to the system bus or the profile's
address, add the backend's match rules, hand every message to its handler, run its session while connected, and
when the bus cannot be reached or the connection drops, tell the backend and try again after a pause.

Used by ModemManager and UPower. It knows no service: what to read and what a signal means stay with the backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"


class DBusCallError(Exception):
    """A method call answered with a D-Bus error (``name`` is the error's name, empty when no answer came)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


class DBusLink:
    """A backend's connection to one bus.

    ``run()`` loops until cancelled: each time the connection is up it starts ``session()`` (the backend's reads,
    cancelled when the connection goes); ``lost(why)`` is called when the bus cannot be reached ("D-Bus not
    reachable") or the connection drops ("D-Bus connection lost"). ``call`` sends one method call."""

    def __init__(
        self,
        name: str,
        address: str | None,
        match_rules: Sequence[str],
        on_message: Callable[[Message], None],
        session: Callable[[], Coroutine[Any, Any, None]],
        lost: Callable[[str], None],
        reconnect: float,
    ) -> None:
        self.name = name  # for the journal: "UPower", "ModemManager"
        self.address = address
        self.match_rules = tuple(match_rules)
        self.on_message = on_message
        self.session = session
        self.lost = lost
        self.reconnect = reconnect
        self.bus: MessageBus | None = None

    async def run(self) -> None:
        while True:
            try:
                bus = await self._connect()
            except (OSError, EOFError, DBusCallError) as exc:
                log.warning("%s: D-Bus not reachable: %s", self.name, exc)
                self.disconnect()
                self.lost("D-Bus not reachable")
                await asyncio.sleep(self.reconnect)
                continue
            session = asyncio.get_running_loop().create_task(self.session())
            try:
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            finally:
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session
                self.disconnect()
            log.warning("%s: D-Bus connection lost", self.name)
            self.lost("D-Bus connection lost")
            await asyncio.sleep(self.reconnect)

    async def _connect(self) -> MessageBus:
        bus = MessageBus(bus_address=self.address) if self.address else MessageBus(bus_type=BusType.SYSTEM)
        await bus.connect()
        self.bus = bus
        bus.add_message_handler(self.on_message)
        for rule in self.match_rules:
            await self.call(
                Message(destination=DBUS, path=DBUS_PATH, interface=DBUS, member="AddMatch", signature="s", body=[rule])
            )
        return bus

    def disconnect(self) -> None:
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.remove_message_handler(self.on_message)
            bus.disconnect()

    async def call(self, message: Message) -> Message:
        """The reply to ``message``; raises ``OSError`` when not connected, ``DBusCallError`` on an error reply."""
        if self.bus is None:
            raise OSError("not connected")
        reply = await self.bus.call(message)
        if reply is None or reply.message_type == MessageType.ERROR:
            name = "" if reply is None else str(reply.error_name)
            text = "" if reply is None or not reply.body else str(reply.body[0])
            raise DBusCallError(name, text)
        return reply
