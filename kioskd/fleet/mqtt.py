"""The fleet link's transport: one paho-mqtt client per connection, its network loop on paho's own thread, every
callback handed back to the event loop with ``call_soon_threadsafe``. It decides nothing (when to connect, what to
send, when to retry): that is ``kioskd.fleet``'s job. A fresh client per connection means nothing paho kept of a
dead connection is sent again behind the outbox's back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from kioskd.profile import FleetConfig

log = logging.getLogger(__name__)

# CONNACK return codes of MQTT 3.1.1 that mean "these credentials are not welcome here"
AUTH_REFUSALS = frozenset({4, 5})


@dataclass(frozen=True)
class LinkEvents:
    """What the transport reports, always called on the event loop."""

    up: Callable[[], None]
    down: Callable[[str], None]  # "closed" (asked), "lost", "unreachable", "auth", "tls", "refused", "config:<what>"
    acked: Callable[[int], None]  # the broker acknowledged the message with this id (PUBACK)
    command: Callable[[bytes], None]  # a message on the command topic


class TransportError(Exception):
    """A connection attempt that failed before the broker answered; ``problem`` is a ``LinkEvents.down`` value."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class MqttTransport:
    """One connection attempt at a time to the broker of ``config``."""

    def __init__(
        self,
        config: FleetConfig,
        client_id: str,
        will: tuple[str, bytes],
        command_topic: str | None,
        events: LinkEvents,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.will = will
        self.command_topic = command_topic
        self.events = events
        self._client: mqtt.Client | None = None
        self._closing = False

    # ------------------------------------------------------------------------------------------- connect
    def _password(self) -> str | None:
        if self.config.password_file is None:
            return None
        try:
            return self.config.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TransportError(f"config:password_file {exc.strerror}") from None

    def _build(self, loop: asyncio.AbstractEventLoop) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,  # kioskd.fleet retries on the injected clock, with a fresh client
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, self._password())
        if cfg.tls:
            try:
                client.tls_set(
                    ca_certs=_path(cfg.ca_file),
                    certfile=_path(cfg.cert_file),
                    keyfile=_path(cfg.key_file),
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"config:tls files {getattr(exc, 'strerror', None) or exc}") from None
        topic, payload = self.will
        client.will_set(topic, payload, qos=1, retain=True)
        client.max_inflight_messages_set(cfg.window)
        problem: list[str] = []  # set by on_connect on the network thread, read by on_disconnect on the same thread

        def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            if reason.is_failure:
                code = reason.value
                problem.append("auth" if code in AUTH_REFUSALS or code in (0x86, 0x87) else "refused")
                return
            if self.command_topic is not None:
                client.subscribe(self.command_topic, qos=1)
            loop.call_soon_threadsafe(self._if_current, client, self.events.up)

        def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _reason: ReasonCode, _p: Any) -> None:
            why = problem[0] if problem else ("closed" if self._closing else "lost")
            loop.call_soon_threadsafe(self._if_current, client, lambda: self.events.down(why))

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, _reason: ReasonCode, _p: Any) -> None:
            loop.call_soon_threadsafe(self._if_current, client, lambda: self.events.acked(mid))

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            payload = bytes(message.payload)
            loop.call_soon_threadsafe(self._if_current, client, lambda: self.events.command(payload))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    def _if_current(self, client: mqtt.Client, callback: Callable[[], None]) -> None:
        """Callbacks of a client already replaced (a late PUBACK of a dead connection) are dropped."""
        if client is self._client:
            callback()

    async def open(self) -> None:
        """Start one connection attempt; the outcome comes as ``events.up`` or ``events.down``. Raises
        ``TransportError`` when it fails before the broker answers (unreachable, TLS, configuration)."""
        await self.close(farewell=None)
        loop = asyncio.get_running_loop()
        self._closing = False
        client = await asyncio.to_thread(self._build, loop)
        cfg = self.config
        try:
            # TCP and the TLS handshake block: a worker thread, so the loop never waits on the network
            await asyncio.to_thread(client.connect, cfg.host, cfg.port, cfg.keepalive)
        except ssl.SSLError as exc:
            log.debug("fleet: TLS handshake failed: %s", exc)
            raise TransportError("tls") from None
        except (OSError, ValueError) as exc:
            log.debug("fleet: cannot reach %s:%d: %s", cfg.host, cfg.port, exc)
            raise TransportError("unreachable") from None
        self._client = client
        client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int | None:
        """Hand a message to the network thread; returns its id (the ``acked`` one), None when not connected."""
        client = self._client
        if client is None or not client.is_connected():
            return None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    async def close(self, farewell: tuple[str, bytes] | None) -> None:
        """End the connection: with ``farewell`` (the retained "offline") first, since a clean DISCONNECT keeps the
        broker from publishing the Last Will."""
        client, self._client = self._client, None
        if client is None:
            return
        self._closing = True

        def shut() -> None:
            if farewell is not None and client.is_connected():
                info = client.publish(farewell[0], farewell[1], qos=1, retain=True)
                with contextlib.suppress(RuntimeError, ValueError):  # the connection died meanwhile
                    info.wait_for_publish(timeout=2.0)
            client.disconnect()
            client.loop_stop()

        await asyncio.to_thread(shut)


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)
