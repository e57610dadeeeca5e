"""The fleet link against a real broker (a private mosquitto with a password file and a TLS listener): retained,
debounced health; the outbox across a link cut (broker stopped and started again on the same port); wrong
credentials as a notice; and not one byte of a session in anything the office receives."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from kioskd.clock import RealClock
from kioskd.fleet import FleetLink
from kioskd.profile import FleetConfig
from tests.conftest import Rig, make_rig
from tests.integration.daemon_process import ROOT, start_daemon
from tests.integration.mosquitto_service import VAN_PASSWORD, VAN_USER, Broker, Office, make_certificates
from tests.integration.power_services import wait_until

pytestmark = pytest.mark.integration
BASE = "kioskd/test/sim-01"


def fleet_config(broker: Broker, directory: Path, **overrides: Any) -> FleetConfig:
    password = directory / "fleet-password"
    if not password.exists():
        password.write_text(VAN_PASSWORD + "\n")
    values: dict[str, Any] = {
        "region": "test",
        "host": "localhost",
        "port": broker.tls_port,
        "tls": True,
        "ca_file": broker.directory / "ca.pem",
        "username": VAN_USER,
        "password_file": password,
        "health_period": 1.0,
        "retry_min": 0.2,
        "retry_max": 1.0,
        "keepalive": 5,
    }
    return FleetConfig.model_validate(values | overrides)


@dataclass
class Fleet:
    rig: Rig
    broker: Broker
    link: FleetLink
    directory: Path

    async def up(self) -> None:
        await wait_until(lambda: self.link.state == "up", "the fleet link up", within=15)


async def start_fleet(tmp_path: Path, broker: Broker, **overrides: Any) -> Fleet:
    rig = await make_rig(tmp_path)
    assert rig.station.store is not None
    rig.station.store.queue_for_fleet = True
    link = FleetLink(fleet_config(broker, tmp_path, **overrides), rig.station, rig.station.store, RealClock())
    await link.start()
    return Fleet(rig, broker, link, tmp_path)


@pytest.fixture
async def fleet(tmp_path: Path, broker: Broker) -> AsyncIterator[Fleet]:
    f = await start_fleet(tmp_path, broker)
    try:
        yield f
    finally:
        await f.link.close()
        await f.rig.station.close()
        for _, device in f.rig.devices.all():
            await device.close()


async def drained(fleet: Fleet, within: float = 20.0) -> None:
    """The outbox empty and every acknowledgement written; fails after ``within`` seconds (an upper bound)."""
    try:
        await asyncio.wait_for(fleet.link.drained(), within)
    except TimeoutError:
        raise AssertionError(f"the outbox did not drain in {within} s: {fleet.link.describe()}") from None


def payloads(office: Office, leaf: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in office.of(lambda m: m.topic == f"{BASE}/{leaf}")]


async def a_visit(rig: Rig) -> None:
    """One citizen: a session opened, then wiped by the next press (which opens the next one)."""
    await rig.drive(rig.station.next_citizen())


# --------------------------------------------------------------------------------------------------- health
async def test_health_is_retained_for_late_subscribers_and_follows_the_station(fleet: Fleet) -> None:
    await fleet.up()
    late = Office(fleet.broker, [f"{BASE}/health", f"{BASE}/status"], client_id="late-1")
    await wait_until(lambda: len(late.of(lambda m: m.topic.endswith("/health"))) == 1, "the retained health")
    first = late.of(lambda m: m.topic.endswith("/health"))[0]
    status = late.of(lambda m: m.topic.endswith("/status"))
    assert first.retain and json.loads(first.payload)["station"] == "off"
    assert [(m.payload, m.retain) for m in status] == [(b"online", True)]
    late.close()

    await fleet.rig.station.start()
    await wait_until(lambda: fleet.link._last_health is not None and fleet.link._last_health["station"] == "ready",
                     "health with the station ready", within=5)  # fmt: skip
    # the link knows the new health before the broker has it: a late subscriber may still get the old one, so
    # subscribe again (a new late subscriber each time) until the retained message is the new one
    health: dict[str, Any] = {}
    for attempt in range(50):
        later = Office(fleet.broker, [f"{BASE}/health"], client_id=f"late-2-{attempt}")
        await wait_until(lambda office=later: bool(office.of(lambda m: m.retain)), "the updated retained health")
        health = json.loads(later.of(lambda m: m.retain)[0].payload)
        later.close()
        if health["station"] == "ready":
            break
        await asyncio.sleep(0.1)
    assert health["station"] == "ready" and health["modem"]["operator"] == "Orange F"
    assert health["power"]["shore"] is True and health["vehicle"] == "sim-01"


async def test_health_is_debounced_to_one_message_per_period(fleet: Fleet) -> None:
    await fleet.up()
    live = Office(fleet.broker, [f"{BASE}/health"], client_id="live")
    await wait_until(lambda: len(live.messages) == 1, "the retained health")
    clock = RealClock()
    start = clock.monotonic()
    for quality in range(20, 80, 3):  # twenty signal changes within a few hundred milliseconds
        await fleet.rig.sim("signal", str(quality))
    assert clock.monotonic() - start < 1.0, "the burst must fit in one health period for this test to mean anything"
    await wait_until(lambda: any(json.loads(m.payload)["modem"]["signal"] == 77 for m in live.messages),
                     "the last signal in a health message", within=5)  # fmt: skip
    after_burst = live.messages[1:]
    assert 1 <= len(after_burst) <= 2, f"{len(after_burst)} health messages for one burst"
    live.close()


async def test_the_link_follows_the_modem_and_leaves_offline_retained(fleet: Fleet) -> None:
    await fleet.up()
    office = Office(fleet.broker, [f"{BASE}/status"], client_id="status-watch")
    await wait_until(lambda: bool(office.messages), "the retained status")
    await fleet.rig.sim("link", "down")
    await wait_until(lambda: fleet.link.state == "offline", "the link offline with the modem")
    await wait_until(lambda: office.messages[-1].payload == b"offline", "the status offline")
    await fleet.rig.sim("link", "up")
    await fleet.rig.run(fleet.rig.station.profile.connectivity.period + 1)  # the next probe finds the Internet
    await fleet.up()
    await wait_until(lambda: office.messages[-1].payload == b"online", "the status online again")
    office.close()


# --------------------------------------------------------------------------------------------------- outbox
async def test_a_link_cut_queues_visits_and_receipts_and_a_restart_delivers_each_once_in_order(fleet: Fleet) -> None:
    office = Office(fleet.broker, [f"{BASE}/activity", f"{BASE}/receipt"], client_id="office-q", persistent=True)
    store = fleet.rig.station.store
    assert store is not None
    await fleet.up()
    await fleet.rig.station.start()
    await fleet.rig.station.next_citizen()
    await a_visit(fleet.rig)  # the first visit goes out at once
    await wait_until(lambda: len(office.messages) == 2, "the first visit and its receipt")
    await drained(fleet)

    fleet.broker.stop()  # the link is cut
    await wait_until(lambda: fleet.link.state != "up", "the link down")
    for _ in range(3):
        await a_visit(fleet.rig)
    assert await store.outbox_size() == 6, "three visits and three receipts wait in the store"
    assert len(office.messages) == 2

    fleet.broker.start()  # same ports
    await wait_until(lambda: len(office.messages) >= 8, "the queued messages after the restart", within=20)
    await drained(fleet)
    bodies = [json.loads(m.payload) for m in office.messages]
    ids = [b["id"] for b in bodies]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 8, f"ids received: {ids}"
    assert ids == list(range(ids[0], ids[0] + 8)), "one id per message, none skipped"
    kinds = [b["kind"] for b in bodies]
    assert kinds == ["activity", "receipt"] * 4, "each visit, then the receipt of the wipe that ended it"
    assert all(b["vehicle"] == "sim-01" and b["region"] == "test" and b["store"] == store.instance for b in bodies)
    assert [b["data"]["reason"] for b in bodies if b["kind"] == "activity"] == ["next"] * 4
    assert await store.outbox_size() == 0, "removed once acknowledged"
    office.close()


async def test_messages_in_flight_when_the_link_drops_are_sent_again_and_leave_the_outbox_only_when_acknowledged(
    fleet: Fleet,
) -> None:
    office = Office(fleet.broker, [f"{BASE}/activity", f"{BASE}/receipt"], client_id="office-f")
    store = fleet.rig.station.store
    assert store is not None
    await fleet.up()
    await fleet.rig.station.start()
    await fleet.rig.station.next_citizen()
    await a_visit(fleet.rig)
    await drained(fleet)
    fleet.broker.pause()  # the broker takes the next messages into its socket but never acknowledges them
    try:
        await a_visit(fleet.rig)
        await wait_until(lambda: fleet.link.describe()["in_flight"] == 2, "two messages in flight")
        await fleet.rig.sim("link", "down")  # the modem drops before the PUBACKs come
        await wait_until(lambda: fleet.link.state == "offline", "the link offline")
        assert await store.outbox_size() == 2, "unacknowledged messages stay in the outbox"
    finally:
        fleet.broker.resume()  # it now reads what was sent before the cut and passes it on
    await fleet.rig.sim("link", "up")
    await fleet.rig.run(fleet.rig.station.profile.connectivity.period + 1)  # the next probe finds the Internet
    await fleet.up()
    await drained(fleet)
    await wait_until(lambda: len(office.messages) >= 4, "every message at the office")
    ids = [json.loads(m.payload)["id"] for m in office.messages]
    # QoS 1 is at least once: the office may see an id twice and keeps the first; nothing may be missing
    assert sorted(set(ids)) == [1, 2, 3, 4], f"ids received: {ids}"
    assert await store.outbox_size() == 0
    office.close()


async def test_a_wrong_password_is_a_notice_for_the_agent_and_the_link_recovers_once_fixed(
    tmp_path: Path, broker: Broker
) -> None:
    (tmp_path / "fleet-password").write_text("not-the-password\n")
    fleet = await start_fleet(tmp_path, broker)
    try:
        await wait_until(lambda: fleet.link.problem == "auth", "the refusal")
        notice = next(n for n in fleet.rig.station.state.notices if n.topic == "fleet")
        assert notice.key == "fleet.auth_failed" and notice.level == "warning"
        assert "mot de passe" in notice.to_json()["fr"]
        assert fleet.link.state == "waiting", "the daemon keeps running and tries again later"
        (tmp_path / "fleet-password").write_text(VAN_PASSWORD + "\n")  # the technician fixes the file
        await fleet.up()
        assert not any(n.topic == "fleet" for n in fleet.rig.station.state.notices), "the notice goes with the fix"
    finally:
        await fleet.link.close()
        await fleet.rig.station.close()


async def test_a_broker_certificate_from_another_ca_is_a_tls_notice(tmp_path: Path, broker: Broker) -> None:
    other = tmp_path / "other-ca"
    other.mkdir()
    make_certificates(other, name="other")
    fleet = await start_fleet(tmp_path, broker, ca_file=other / "other.pem")
    try:
        await wait_until(lambda: fleet.link.problem == "tls", "the TLS refusal")
        assert any(n.key == "fleet.tls_failed" for n in fleet.rig.station.state.notices)
    finally:
        await fleet.link.close()
        await fleet.rig.station.close()


# --------------------------------------------------------------------------------------------------- privacy
async def test_nothing_the_office_receives_holds_a_byte_of_the_session(fleet: Fleet) -> None:
    canary = "dupont-canary-7f3a"
    office = Office(fleet.broker, ["kioskd/#"], client_id="office-all")
    await fleet.up()
    rig = fleet.rig
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    (session.workspace.scans / f"scan-{canary}.pdf").write_bytes(f"%PDF-1.4 {canary}".encode())
    (session.workspace.downloads / f"avis-{canary}.pdf").write_bytes(canary.encode())
    await rig.station.print_document(f"%PDF-1.4 {canary}".encode())
    await rig.station.snapshot()  # counts the files into the state the health is made of
    # the office asks for a report in the middle of the session, and tries a command that does not exist
    office.client.publish(f"{BASE}/cmd", json.dumps({"command": "status-report", "request": "r1"}), qos=1)
    office.client.publish(f"{BASE}/cmd", b"wipe-now", qos=1)
    await wait_until(lambda: len(payloads(office, "reply")) == 2, "two replies")
    await a_visit(rig)
    await wait_until(lambda: len(payloads(office, "receipt")) == 1, "the receipt")
    await drained(fleet)

    replies = {r["command"]: r for r in payloads(office, "reply")}
    report = replies["status-report"]
    assert report["ok"] and report["request"] == "r1" and set(report["report"]["devices"]) >= {"power", "printer"}
    assert not replies["wipe-now"]["ok"] and "status-report" in replies["wipe-now"]["known"]
    assert replies["wipe-now"]["error"]["fr"] == "Commande inconnue : wipe-now"
    assert payloads(office, "activity")[0]["data"]["prints"] == 1
    secrets = (canary, str(rig.runtime), session.workspace.root.name + "/", "scan-", ".pdf")
    for message in office.messages:
        text = message.payload.decode()
        for secret in secrets:
            assert secret not in text, f"{message.topic} carries {secret!r}"
    assert {m.topic.rsplit("/", 1)[1] for m in office.messages} >= {
        "status", "health", "reply", "activity", "receipt", "cmd",
    }  # fmt: skip
    office.close()


# --------------------------------------------------------------------------------------------------- the daemon
def test_the_daemon_links_a_profile_with_a_fleet_section_and_kioskctl_prints_the_month(
    tmp_path: Path, broker: Broker
) -> None:
    password = tmp_path / "fleet-password"
    password.write_text(VAN_PASSWORD + "\n")
    profile = tmp_path / "van.toml"
    profile.write_text(
        (ROOT / "profiles" / "sim.toml").read_text().replace('workspace = "auto"', 'workspace = "directory"')
        + f'\n[fleet]\nregion = "test"\nhost = "localhost"\nport = {broker.tls_port}\n'
        f'ca_file = "{broker.directory / "ca.pem"}"\nusername = "{VAN_USER}"\npassword_file = "{password}"\n'
        "health_period = 1\n"
    )
    office = Office(broker, ["kioskd/#"], client_id="office-d")
    daemon = start_daemon(tmp_path, "--profile", str(profile))
    try:
        daemon.open_session()
        daemon.ctl("next")  # the first citizen's visit ends
        deadline = time.monotonic() + 15
        while len(office.of(lambda m: m.topic.endswith(("/activity", "/receipt")))) < 2:
            assert time.monotonic() < deadline, f"nothing queued reached the office; log:\n{daemon.log.read_text()}"
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket_path)), base_url="http://k") as api:
            link = api.get("/fleet").json()
        assert link["state"] == "up" and link["topic"] == BASE and link["outbox"] == 0 and link["sent"] == 2
        french = daemon.ctl("stats").stdout
        month = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m")  # the van's month, as the figures count
        assert french.startswith(f"Activité {month} : 1 visite(s)"), french
        assert "(arrêt non renseigné)" in french and "Heures les plus chargées" in french
        assert "Busiest hours" in daemon.ctl("--lang", "en", "stats").stdout
        csv = daemon.ctl("stats", "--csv").stdout.splitlines()
        assert csv[0].startswith("date;heure;arrêt") and len(csv) == 2
        chart = tmp_path / "chart.png"
        daemon.ctl("stats", "--chart", str(chart))
        assert chart.read_bytes().startswith(b"\x89PNG")
        wrong = daemon.ctl("stats", "--month", "2026-13", check=False)
        assert wrong.returncode == 1 and "Requête invalide" in wrong.stderr
        assert daemon.stop() == 0
        status = office.of(lambda m: m.topic == f"{BASE}/status")
        assert [m.payload for m in status][-1] == b"offline", "a clean stop says offline itself"
    finally:
        daemon.kill()
        office.close()
