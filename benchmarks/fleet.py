"""The fleet link against a private mosquitto (the integration tests' own, TLS + password): payload sizes of a real
visit, receipt, health and status report; how fast the outbox takes messages in; how long 1,000 queued messages
take to drain (published, acknowledged, deleted) at a few window sizes; and, as the peer, ``mosquitto_pub`` sending
the same 1,000 payloads at QoS 1 over TLS from one process (no store, no acknowledgement bookkeeping). Prints figures,
asserts nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the broker and the simulated station are the tests' own

from kioskd.clock import RealClock  # noqa: E402
from kioskd.fleet import FleetLink, health  # noqa: E402
from kioskd.profile import FleetConfig  # noqa: E402
from kioskd.records.store import Store  # noqa: E402
from tests.conftest import Rig, make_rig  # noqa: E402
from tests.integration import require  # noqa: E402
from tests.integration.mosquitto_service import (  # noqa: E402
    OFFICE_PASSWORD,
    OFFICE_USER,
    VAN_PASSWORD,
    VAN_USER,
    Broker,
    Office,
)

QUEUED = 1000
WINDOWS = (1, 20, 100)


def config(broker: Broker, directory: Path, window: int) -> FleetConfig:
    password = directory / "password"
    password.write_text(VAN_PASSWORD)
    return FleetConfig.model_validate(
        {
            "region": "bench",
            "host": "localhost",
            "port": broker.tls_port,
            "ca_file": broker.directory / "ca.pem",
            "username": VAN_USER,
            "password_file": password,
            "window": window,
            "retry_min": 0.1,
            "retry_max": 0.5,
        }
    )


async def wait(condition: Any, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark stuck")
        await asyncio.sleep(0.005)


async def real_bodies(rig: Rig) -> tuple[dict[str, Any], dict[str, Any]]:
    """A visit and a receipt as a real session through the simulated van leaves them."""
    assert rig.station.store is not None
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.station.print_document(b"%PDF-1.4 one page")
    await rig.drive(rig.station.next_citizen())
    queued = await rig.station.store.outbox(0, 10)
    by_kind = {message.kind: message.body for message in queued}
    await rig.station.store.acknowledged([message.id for message in queued])
    return by_kind["activity"], by_kind["receipt"]


async def drain(broker: Broker, directory: Path, rig: Rig, bodies: list[dict[str, Any]], window: int) -> dict[str, Any]:
    store = rig.station.store
    assert store is not None
    start = time.perf_counter()
    for number, body in enumerate(bodies):
        await store.enqueue("activity" if number % 2 == 0 else "receipt", body, 0.0)
    enqueue_seconds = time.perf_counter() - start
    office = Office(broker, ["kioskd/bench/+/activity", "kioskd/bench/+/receipt"], client_id=f"office-{window}")
    link = FleetLink(config(broker, directory, window), rig.station, store, RealClock())
    start = time.perf_counter()
    await link.start()
    await wait(lambda: len(office.messages) >= len(bodies))
    await link.drained()
    seconds = time.perf_counter() - start
    sizes = [len(m.payload) for m in office.messages]
    ids = [json.loads(m.payload)["id"] for m in office.messages]
    await link.close()
    office.close()
    return {
        "enqueue_per_s": len(bodies) / enqueue_seconds,
        "seconds": seconds,
        "per_s": len(bodies) / seconds,
        "in_order": ids == sorted(ids) and len(set(ids)) == len(ids),
        "mean_size": sum(sizes) / len(sizes),
    }


def peer(broker: Broker, payloads: list[bytes]) -> float:
    """``mosquitto_pub -l`` (one line per message, QoS 1, TLS) for the same payloads; seconds."""
    binary = require.binary("mosquitto_pub", "mosquitto-clients")
    tls = ["-h", "localhost", "-p", str(broker.tls_port), "--cafile", str(broker.directory / "ca.pem")]
    login = ["-u", OFFICE_USER, "-P", OFFICE_PASSWORD]
    command = [binary, *tls, *login, "-q", "1", "-t", "kioskd/bench/peer/activity", "-l"]
    start = time.perf_counter()
    subprocess.run(command, input=b"\n".join(payloads) + b"\n", check=True, timeout=120)
    return time.perf_counter() - start


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-fleet-") as tmp:
        directory = Path(tmp)
        (directory / "broker").mkdir()
        (directory / "rig").mkdir()
        broker = Broker(directory / "broker")
        broker.start()
        try:
            rig = await make_rig(directory / "rig")
            store = rig.station.store
            assert isinstance(store, Store)
            store.queue_for_fleet = True
            activity, receipt = await real_bodies(rig)
            link = FleetLink(config(broker, directory, 20), rig.station, store, RealClock())
            health_size = len(json.dumps({**health(rig.station.state), "at": 0.0}, separators=(",", ":")))
            report_size = len(json.dumps(link.status_report(), separators=(",", ":")))
            print(f"payloads (bytes, JSON): visit {len(json.dumps(activity))}, receipt {len(json.dumps(receipt))}, "
                  f"health {health_size}, status report {report_size}")  # fmt: skip
            bodies = [activity if n % 2 == 0 else receipt for n in range(QUEUED)]
            for window in WINDOWS:
                result = await drain(broker, directory, rig, bodies, window)
                print(
                    f"window {window:>3}: outbox takes {result['enqueue_per_s']:,.0f} msg/s in; "
                    f"{QUEUED} queued drained in {result['seconds']:.2f} s = {result['per_s']:,.0f} msg/s "
                    f"(mean {result['mean_size']:.0f} B on the wire, in order: {result['in_order']})"
                )
            payloads = [json.dumps({"id": n, "data": body}).encode() for n, body in enumerate(bodies)]
            seconds = peer(broker, payloads)
            print(f"peer mosquitto_pub -l -q 1 (TLS, no store): {QUEUED} in {seconds:.2f} s = {QUEUED / seconds:,.0f} "
                  "msg/s")  # fmt: skip
            await rig.station.close()
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
