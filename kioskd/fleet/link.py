"""The fleet link: while the van is online, its health goes to the office's MQTT broker as a retained message
(debounced), and its visits and wipe receipts leave the store's outbox in order, each removed only once the broker
acknowledged it (QoS 1). It answers a few read-only commands, and hands the office's one order, an update by URL
and sha256, to whoever the daemon named (the update policy: the download, its checks and the lock are its). It sends
counts, states and catalogue keys: never a session's files, names, URLs, notice parameters or workspace.

Topic layout (``<prefix>`` is ``kioskd`` unless the profile says otherwise)::

    <prefix>/<region>/<vehicle>/status    retained  "online" | "offline" (the Last Will)
    <prefix>/<region>/<vehicle>/health    retained  JSON: station, power, modem, device faults, notice keys
    <prefix>/<region>/<vehicle>/activity  QoS 1     JSON {"id", "store", "kind", "vehicle", "queued_at", "data"}
    <prefix>/<region>/<vehicle>/receipt   QoS 1     JSON {"id", …, "data": wipe receipt}
    <prefix>/<region>/<vehicle>/cmd       in        "status-report" | "health" | "ping", or JSON {"command", "request"};
                                                    {"command": "update", "url", "sha256", "request"}
    <prefix>/<region>/<vehicle>/update    QoS 1     JSON {"id", …, "data": {"event": "ready" | "refused" | "applied"
                                                    | "rolled_back" | "interrupted", "version", "running", "slot",
                                                    "key"?}}
    <prefix>/<region>/<vehicle>/reply     QoS 1     JSON {"request", "command", "ok", …}

``id`` grows by one per queued message of a van and is never reused within one store file (``store`` names that
file: a reflashed van starts again at 1 under a new name): the office drops a (vehicle, store, id) it has seen.
The region level lets an office subscribe to ``<prefix>/<region>/+/…`` and a clustered broker share the load by
region (see README.md). Whether the van is online comes from ``online`` (the modem's state today; the connectivity
policy can hand in its own judgement)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from kioskd import __version__, messages
from kioskd.bus import EventBus
from kioskd.errors import KioskError
from kioskd.hal import Clock, TimerHandle
from kioskd.profile import FleetConfig, Profile
from kioskd.records.store import Queued, Store
from kioskd.station.snapshot import Level, StationChanged, StationState

log = logging.getLogger(__name__)

COMMANDS = ("status-report", "health", "ping", "update")
# the office's update order: (url, sha256) → the update's state once accepted (raises KioskError when refused)
UpdateOrder = Callable[[str, str], Awaitable[dict[str, Any]]]
MAX_COMMAND = 1024  # bytes: a command is a word and a request id
LinkState = Literal["offline", "connecting", "up", "waiting"]


class Transport(Protocol):
    """What the link needs of a transport (``kioskd.fleet.mqtt.MqttTransport``; tests may bring another)."""

    @property
    def connected(self) -> bool: ...

    async def open(self) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int | None: ...

    async def close(self, farewell: tuple[str, bytes] | None) -> None: ...


class StationView(Protocol):
    """What the link needs of the station (``kioskd.station.Station`` is one): its snapshot and the bus that
    carries its changes, the profile (the vehicle's id and file), and the agent's notices."""

    bus: EventBus
    profile: Profile

    @property
    def state(self) -> StationState: ...

    def notice(self, topic: str, key: str, level: Level = "info", **params: Any) -> None: ...

    def clear_notice(self, topic: str) -> None: ...


def modem_online(state: StationState) -> bool:
    """Online: a data bearer up and no failed reachability check (the connectivity policy's probe when it ran one,
    else the modem's own)."""
    modem = state.modem
    internet = state.connectivity.internet if state.connectivity.internet is not None else modem.internet
    return modem.present and modem.connected and internet is not False


def health(state: StationState) -> dict[str, Any]:
    """What the office sees of a van: its state, power, signal and which faults and notices are up (keys only:
    a notice's parameters may carry counts of a session)."""
    power, modem = state.power, state.modem
    return {
        "vehicle": state.vehicle,
        "station": state.mode,
        "since": state.since,
        "sessions_today": state.sessions_today,
        "stop": state.connectivity.stop,  # a place of the tour
        "power": {
            "available": power.available,
            "shore": power.shore,
            "soc": None if power.soc is None else round(power.soc, 1),
            "time_to_go": None if power.time_to_go is None else round(power.time_to_go),
            "ignition": power.ignition,
        },
        "modem": {
            "present": modem.present,
            "registration": modem.registration,
            "technology": modem.technology,
            "signal": modem.signal,
            "operator": modem.operator,
            "internet": modem.internet,
        },
        "devices": {
            "scanner": state.scanner.status,
            "printer": state.printer.status,
            "printer_reasons": list(state.printer.reasons),
            "displays_powered": state.displays.powered,
        },
        "faults": sorted(n.topic.removeprefix("device.") for n in state.notices if n.topic.startswith("device.")),
        "notices": [{"topic": n.topic, "key": n.key, "level": n.level} for n in state.notices],
    }


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class FleetLink:
    def __init__(
        self,
        config: FleetConfig,
        station: StationView,
        store: Store,
        clock: Clock,
        transport: Callable[[FleetLink], Transport] | None = None,
        online: Callable[[StationState], bool] = modem_online,
        update: UpdateOrder | None = None,
    ) -> None:
        self.config = config
        self.update = update
        self.station = station
        self.store = store
        self.clock = clock
        self.online = online
        vehicle = station.profile.vehicle.id
        self.base = f"{config.topic_prefix}/{config.region}/{vehicle}"
        self.transport = (transport or _mqtt_transport)(self)
        self.state: LinkState = "offline"
        self.problem: str | None = None
        self.sent = 0  # queued messages acknowledged since start
        self.health_sent = 0
        self._inflight: dict[int, int] = {}  # transport message id → outbox id
        self._acked: set[int] = set()  # acknowledged, not yet deleted from the outbox
        self._cursor = 0  # the last outbox id handed to the transport on this connection
        self._wake = asyncio.Event()  # something to send: a new message, room in the window, the link up
        self._ack_ready = asyncio.Event()  # acknowledgements to write
        self._backoff = config.retry_min
        self._retry: TimerHandle | None = None
        self._health_timer: TimerHandle | None = None
        self._last_health: dict[str, Any] | None = None
        self._last_health_at = float("-inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    # ------------------------------------------------------------------------------------------- life
    async def start(self) -> None:
        self._unsubscribe = self.station.bus.subscribe(self._on_station, StationChanged)
        self.store.on_queued = self._wake.set
        self._spawn(self._pump())
        self._spawn(self._flush_acks())
        if self.online(self.station.state):
            self._spawn(self._connect())  # in the background: an unreachable broker must not delay READY

    async def close(self) -> None:
        """Say "offline" (retained) and leave; the outbox keeps what was not acknowledged."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.store.on_queued = None
        for timer in (self._retry, self._health_timer):
            if timer is not None:
                timer.cancel()
        await self.transport.close(farewell=(self.topic("status"), b"offline"))
        self.state = "offline"
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._acked:
            await self.store.acknowledged(sorted(self._acked))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def describe(self) -> dict[str, Any]:
        """The link as the API and the status report show it."""
        return {
            "state": self.state,
            "problem": self.problem,
            "broker": f"{self.config.host}:{self.config.port}",
            "topic": self.base,
            "sent": self.sent,
            "health_sent": self.health_sent,
            "in_flight": len(self._inflight),
        }

    # ------------------------------------------------------------------------------------------- connection
    async def _connect(self) -> None:
        if self._closed or self.state in ("connecting", "up"):
            return
        self._cancel_retry()
        self.state = "connecting"
        try:
            await self.transport.open()
        except Exception as exc:  # TransportError, or anything a broken TLS file makes paho raise
            self._link_down(getattr(exc, "problem", None) or f"config:{type(exc).__name__}")

    def _link_up(self) -> None:
        if self._closed or not self.online(self.station.state):  # the modem dropped while we were connecting
            self.state = "offline"
            self._spawn(self.transport.close(farewell=(self.topic("status"), b"offline")))
            return
        log.info("fleet: linked to %s:%d as %s", self.config.host, self.config.port, self.base)
        self.state, self.problem = "up", None
        self._backoff = self.config.retry_min
        self.station.clear_notice("fleet")
        self._inflight.clear()
        self._cursor = 0  # from the oldest message still in the outbox, in order
        self.transport.publish(self.topic("status"), b"online", qos=1, retain=True)
        self._last_health = None
        self._send_health()
        self._wake.set()

    def _link_down(self, problem: str) -> None:
        self._inflight.clear()
        if problem == "closed" or self._closed:
            self.state = "offline"
            return
        self.problem = problem
        self._report(problem)
        if not self.online(self.station.state):
            self.state = "offline"
            return
        self.state = "waiting"
        # wrong credentials or certificates will not mend by themselves soon: wait the longest between attempts
        delay = self.config.retry_max if problem in ("auth", "tls") or problem.startswith("config") else self._backoff
        self._backoff = min(self._backoff * 2, self.config.retry_max)
        self._cancel_retry()
        self._retry = self.clock.call_later(delay, lambda: self._spawn(self._connect()))

    def _report(self, problem: str) -> None:
        cfg = self.config
        if problem == "auth":
            log.error(
                "fleet: the broker %s:%d refused user %r: check [fleet] username and password_file (%s)",
                cfg.host, cfg.port, cfg.username, cfg.password_file,
            )  # fmt: skip
            self.station.notice("fleet", "fleet.auth_failed", "warning")
        elif problem == "tls":
            log.error("fleet: TLS with %s:%d failed: check [fleet] ca_file and the broker's certificate", cfg.host,
                      cfg.port)  # fmt: skip
            self.station.notice("fleet", "fleet.tls_failed", "warning")
        elif problem.startswith("config:"):
            detail = problem.removeprefix("config:")
            log.error("fleet: cannot use the [fleet] settings of %s: %s", self.station.profile.source, detail)
            self.station.notice("fleet", "fleet.config", "warning", detail=detail)
        else:  # unreachable or lost: a van loses its link many times a day, no need to bother the agent
            log.info("fleet: link %s (%s:%d)", problem, cfg.host, cfg.port)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _on_station(self, event: Any) -> None:
        assert isinstance(event, StationChanged)
        online, was = self.online(event.state), self.online(event.previous)
        if online and not was and self.state in ("offline", "waiting"):
            self._backoff = self.config.retry_min
            self._spawn(self._connect())
        elif was and not online and self.state != "offline":
            self._cancel_retry()
            self.state = "offline"
            self._inflight.clear()
            self._spawn(self.transport.close(farewell=(self.topic("status"), b"offline")))
        self._health_changed()

    # ------------------------------------------------------------------------------------------- health
    def _health_changed(self) -> None:
        if self.state != "up" or self._health_timer is not None:
            return  # sent at link up; or a send is already due and will take the latest state
        if health(self.station.state) == self._last_health:
            return
        wait = self._last_health_at + self.config.health_period - self.clock.monotonic()
        if wait <= 0:
            self._send_health()
        else:
            self._health_timer = self.clock.call_later(wait, self._health_due)

    def _health_due(self) -> None:
        self._health_timer = None
        if self.state == "up" and health(self.station.state) != self._last_health:
            self._send_health()

    def _send_health(self) -> None:
        current = health(self.station.state)
        payload = {**current, "at": round(self.clock.wall(), 1)}
        if self.transport.publish(self.topic("health"), _json(payload), qos=1, retain=True) is not None:
            self._last_health, self._last_health_at = current, self.clock.monotonic()
            self.health_sent += 1

    # ------------------------------------------------------------------------------------------- outbox
    def _payload(self, message: Queued) -> bytes:
        return _json(
            {
                "id": message.id,
                "store": self.store.instance,  # ids count per store file: (vehicle, store, id) names a message
                "kind": message.kind,
                "vehicle": self.station.profile.vehicle.id,
                "region": self.config.region,
                "queued_at": message.queued_at,
                "data": message.body,
            }
        )

    async def _pump(self) -> None:
        """Keep up to ``window`` outbox messages in flight, oldest first, while the link is up."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._fill()
            except Exception:  # a store error must not end the link for the rest of the day
                log.exception("fleet: sending from the outbox failed")

    async def _fill(self) -> None:
        while self.state == "up" and len(self._inflight) < self.config.window:
            room = self.config.window - len(self._inflight)
            batch = [m for m in await self.store.outbox(self._cursor, room) if m.id not in self._acked]
            if not batch or self.state != "up":
                return
            for message in batch:
                mid = self.transport.publish(self.topic(message.kind), self._payload(message), qos=1)
                if mid is None:
                    return  # the link went down; link_up starts again from the oldest
                self._inflight[mid] = message.id
                self._cursor = message.id

    def acked(self, mid: int) -> None:
        outbox_id = self._inflight.pop(mid, None)
        if outbox_id is None:
            return  # health, status and replies are not in the outbox
        self._acked.add(outbox_id)
        self.sent += 1
        self._wake.set()
        self._ack_ready.set()

    async def _flush_acks(self) -> None:
        """Delete acknowledged messages in batches (one transaction each, not one per PUBACK)."""
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            batch = sorted(self._acked)
            if not batch:
                continue
            try:
                await self.store.acknowledged(batch)
            except Exception:  # kept in memory: the next acknowledgement tries again
                log.exception("fleet: removing acknowledged messages failed")
                continue
            self._acked.difference_update(batch)

    async def drained(self) -> None:
        """Wait until the outbox is empty and every acknowledgement is written (tests, benchmarks, shutdown)."""
        while self._inflight or self._acked or await self.store.outbox_size():
            await self.clock.sleep(0.05)

    # ------------------------------------------------------------------------------------------- commands
    def command(self, raw: bytes) -> None:
        """A request from the office: read-only reports, never anything of a session."""
        request: str | None = None
        try:
            if len(raw) > MAX_COMMAND:
                raise ValueError("too long")
            text = raw.decode("utf-8").strip()
            if text.startswith("{"):
                body = json.loads(text)
                name = str(body.get("command", ""))
                request = None if body.get("request") is None else str(body["request"])[:64]
                if name == "update":
                    self._spawn(self._update(request, str(body.get("url", "")), str(body.get("sha256", ""))))
                    return
            else:
                name = text
        except (UnicodeDecodeError, ValueError, AttributeError):
            name = "?"
        reply: dict[str, Any] = {"request": request, "command": name[:64], "ok": True}
        if name == "ping":
            reply["at"] = round(self.clock.wall(), 1)
        elif name == "health":
            self._last_health = None
            self._send_health()
        elif name == "status-report":
            reply["report"] = self.status_report()
        else:
            reply |= {
                "ok": False,
                "error": messages.both("fleet.unknown_command", command=name[:64]),
                "known": COMMANDS,
            }
        self.transport.publish(self.topic("reply"), _json(reply), qos=1)

    async def _update(self, request: str | None, url: str, sha256: str) -> None:
        """The office's update order: accepted (the download starts; its outcome comes as ``update`` messages) or
        refused at once with the catalogue's words. The URL is not repeated in the reply."""
        reply: dict[str, Any] = {"request": request, "command": "update", "ok": True}
        if self.update is None:
            reply |= {"ok": False, "key": "update.unavailable", "error": messages.both("update.unavailable")}
        else:
            try:
                state = await self.update(url, sha256)
                reply["update"] = {k: state.get(k) for k in ("phase", "slot", "version")}
            except KioskError as exc:
                key = exc.key or "update.failed"
                reply |= {"ok": False, "key": key, "error": messages.both(key, detail=exc.what)}
        self.transport.publish(self.topic("reply"), _json(reply), qos=1)

    def status_report(self) -> dict[str, Any]:
        """A doctor-like report for the office: every device's state and the link, nothing of the session (not even
        whether its workspace holds files)."""
        state = self.station.state
        devices = ("power", "modem", "displays", "scanner", "printer", "button", "audio", "camera")
        return {
            "version": __version__,
            "health": health(state),
            "devices": {kind: dataclasses.asdict(getattr(state, kind)) for kind in devices},
            "link": self.describe(),
            "at": round(self.clock.wall(), 1),
        }


def _mqtt_transport(link: FleetLink) -> Transport:
    """The paho-mqtt transport, imported only when a profile has a [fleet] section."""
    from kioskd.fleet.mqtt import LinkEvents, MqttTransport

    events = LinkEvents(up=link._link_up, down=link._link_down, acked=link.acked, command=link.command)
    return MqttTransport(
        link.config,
        client_id=f"kioskd-{link.station.profile.vehicle.id}",
        will=(link.topic("status"), b"offline"),
        command_topic=link.topic("cmd") if link.config.commands else None,
        events=events,
    )
