"""One D-Bus connection kept up for a backend (dbus-fast, asyncio): connect to the system bus or the profile's
address, add the backend's match rules, hand every message to its handler, run its session while connected, and
when the bus cannot be reached or the connection drops, tell the backend and try again after a pause; and a
service's ``Contract``: the part of its API a backend uses, loaded from the introspection shipped next to it, that
every call and signal is checked against.

Used by ModemManager, NetworkManager and UPower. It knows no service: what to read and what a signal means stay with
the backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Node

from kioskd.hal import DeviceError

log = logging.getLogger(__name__)

DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
NOT_THERE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")


def plain(value: Any) -> Any:
    """A D-Bus value without its variants (nested dictionaries of variants included)."""
    if isinstance(value, Variant):
        return plain(value.value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def match_rules(service: str, path: str, *interfaces: str) -> tuple[str, ...]:
    """The match rules of a backend following ``service``: its PropertiesChanged under ``path``, every signal of
    ``interfaces`` at ``path`` (ObjectManager, the service's own), and the service's owner changing on the bus.
    Match rules, not proxies: dbusmock's introspection lacks PropertiesChanged, and the handlers need no proxy."""
    return (
        f"type='signal',sender='{service}',interface='{PROPERTIES}',member='PropertiesChanged',path_namespace='{path}'",
        *(f"type='signal',sender='{service}',interface='{iface}',path='{path}'" for iface in interfaces),
        f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',arg0='{service}'",
    )


class DBusCallError(Exception):
    """A method call answered with a D-Bus error (``name`` is the error's name, empty when no answer came)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


class Contract:
    """The part of one service's D-Bus API a backend uses, from the introspection XML shipped next to the backend
    (not the service's own, which a mock or another version may shape differently): method signatures in and out,
    signal signatures. ``request`` builds a call, ``result`` checks its reply, ``expects`` a signal."""

    def __init__(self, service: str, introspection: Path) -> None:
        self.service = service
        node = Node.parse(introspection.read_text(encoding="utf-8"))
        self.methods: dict[tuple[str, str], tuple[str, str]] = {
            (i.name, m.name): (m.in_signature, m.out_signature) for i in node.interfaces for m in i.methods
        }
        self.signals: dict[tuple[str, str], str] = {
            (i.name, s.name): s.signature for i in node.interfaces for s in i.signals
        }

    def request(self, path: str, iface: str, member: str, *args: Any) -> Message:
        in_sig, _ = self.methods[(iface, member)]
        return Message(
            destination=self.service, path=path, interface=iface, member=member, signature=in_sig, body=list(args)
        )

    def result(self, iface: str, member: str, reply: Message) -> Any:
        """The reply's one result (None for none); ``DBusCallError`` when its shape is not the contract's."""
        _, out_sig = self.methods[(iface, member)]
        if reply.signature != out_sig:
            raise DBusCallError("signature", f"{member} answered {reply.signature!r}, expected {out_sig!r}")
        return reply.body[0] if reply.body else None

    def expects(self, msg: Message) -> bool:
        """Whether ``msg`` is a signal of the contract, in the shape it promises."""
        return self.signals.get((str(msg.interface), str(msg.member))) == msg.signature


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

    async def ask(self, contract: Contract, path: str, iface: str, member: str, *args: Any) -> Any:
        """A method of ``contract`` with its signatures; its one result (or None). Raises as ``call``."""
        return contract.result(iface, member, await self.call(contract.request(path, iface, member, *args)))

    async def properties(self, contract: Contract, path: str, iface: str) -> dict[str, Any]:
        """Every property of ``iface`` at ``path``, as plain values."""
        values = await self.ask(contract, path, PROPERTIES, "GetAll", iface)
        return {str(key): plain(value) for key, value in (values or {}).items()}

    async def command(self, contract: Contract, within: float, path: str, iface: str, member: str, *args: Any) -> Any:
        """A method that changes something, answered within ``within`` seconds, else ``DeviceError`` (the
        connectivity policy's recovery failed: ``modem.recovery.failed``)."""
        try:
            return await asyncio.wait_for(self.ask(contract, path, iface, member, *args), within)
        except (DBusCallError, OSError, TimeoutError) as exc:
            raise DeviceError(
                f"{self.name} {member}: {exc or 'no answer'}", where="modem", key="modem.recovery.failed"
            ) from None
