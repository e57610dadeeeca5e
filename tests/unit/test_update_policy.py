"""The station is the update lock (kioskd/policies/update.py), on the simulated van: an install waits while a citizen
is there and for the wipe after, no session opens while RAUC writes, a refused bundle writes nothing, and at the next
start the policy tells what became of the install (running, or rolled back with a notice and a message to the
office). RAUC itself is stood in for by a recorder of what it was asked (tests/integration/test_update_rauc.py runs
the real one)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from kioskd.bus import EventBus
from kioskd.clock import ManualClock
from kioskd.errors import TransitionRefused, UpdateRefused
from kioskd.hal import Clock
from kioskd.hal.loader import build_devices
from kioskd.policies import roster
from kioskd.policies.update import UpdateConfig, UpdatePolicy
from kioskd.records.store import Store
from kioskd.session import Sessions
from kioskd.station import Station
from kioskd.update.download import check_order
from kioskd.update.rauc import Bundle, Rauc
from tests.conftest import sim_profile

BOOT_1, BOOT_2 = "11111111-aaaa", "22222222-bbbb"


@dataclass
class RaucStandIn(Rauc):
    """What kioskd asks of RAUC, recorded; ``release`` lets an install finish, ``refuse`` makes the check fail."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: str = ""
    modes_at_install: list[str] = field(default_factory=list)
    station: Station | None = None

    async def info(self, bundle: Path) -> Bundle:
        self.calls.append(("info", str(bundle)))
        if self.refuse:
            raise UpdateRefused("RAUC refused the bundle", where="update check", key=self.refuse)
        return Bundle("kioskd-x86_64", "2.0", "", "")

    async def status(self) -> dict[str, Any]:
        return {"compatible": "kioskd-x86_64", "booted": self.booted_slot()}

    async def install(self, bundle: Path, progress: Any = None) -> None:
        self.calls.append(("install", str(bundle)))
        assert self.station is not None
        self.modes_at_install.append(self.station.mode)
        if progress is not None:
            progress(40, "Copying image to rootfs.1")
        await self.release.wait()


@dataclass
class Van:
    station: Station
    policy: UpdatePolicy
    rauc: Rauc
    store: Store
    clock: Any  # ManualClock (settle) or a real one

    async def settle(self) -> None:
        for _ in range(40):  # simulated time for the station's timers, real time for the wipe's worker threads
            await self.clock.advance(0.5)
            await asyncio.sleep(0.02)

    def notice(self) -> tuple[str, dict[str, Any]] | None:
        for notice in self.station.state.notices:
            if notice.topic == "update":
                return notice.key, dict(notice.params)
        return None


async def make_van(
    tmp_path: Path,
    boot: str = BOOT_1,
    slot: str = "a",
    fleet: bool = False,
    rauc: Rauc | None = None,
    clock: Clock | None = None,
) -> Van:
    """A station on the simulated van with the update policy; ``rauc``: a real RAUC client (else the stand-in);
    ``clock``: a real one for tests that talk to real servers (``settle`` needs the manual one)."""
    (tmp_path / "cmdline").write_text(f"root=PARTLABEL=root-{slot} rauc.slot={slot} rw\n")
    (tmp_path / "boot_id").write_text(boot + "\n")
    (tmp_path / "system.conf").write_text("[system]\n")
    (tmp_path / "image.json").write_text(json.dumps({"version": "1.0", "inputs": "0123456789abcdef"}))
    for sub in ("run", "state"):
        (tmp_path / sub).mkdir(exist_ok=True)
    clock = clock or ManualClock()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    profile = sim_profile(station={"workspace": "directory"})
    devices = build_devices(profile, clock, bus.publish_threadsafe, tmp_path / "run")
    store = Store(tmp_path / "state" / "kioskd.sqlite", uptime=clock.monotonic)
    store.queue_for_fleet = fleet
    rauc = rauc or RaucStandIn(cmdline=tmp_path / "cmdline")
    config = UpdateConfig(rauc, tmp_path / "state" / "update.json", tmp_path / "image.json",
                          tmp_path / "system.conf", tmp_path / "boot_id", downloads=tmp_path / "state" / "downloads",
                          retry_min=0.05)  # fmt: skip
    sessions = Sessions(tmp_path / "run" / "sessions", tmp_path / "state", devices, clock, profile.station)
    policies = roster.standard(profile, devices, clock, store, config)
    station = Station(profile, devices, bus, clock, sessions, store=store, policies=policies)
    if isinstance(rauc, RaucStandIn):
        rauc.station = station
    for _, device in devices.all():
        await device.start()
    (policy,) = [p for p in policies if isinstance(p, UpdatePolicy)]
    return Van(station, policy, rauc, store, clock)


def stand_in(van: Van) -> RaucStandIn:
    assert isinstance(van.rauc, RaucStandIn)
    return van.rauc


async def test_an_install_waits_for_the_citizen_and_the_wipe_and_the_day_ends_once_it_is_written(
    tmp_path: Path,
) -> None:
    van = await make_van(tmp_path)
    await van.station.start()
    await van.station.next_citizen()
    assert van.station.mode == "in_session"

    state = await van.policy.install("/media/stick/kioskd-2.0.raucb")
    await van.settle()
    assert state.phase == "waiting" and van.policy.state.phase == "waiting"
    assert [c[0] for c in stand_in(van).calls] == ["info"]  # checked at once, not written
    assert van.notice() == ("update.waiting", {"version": "2.0"})
    assert van.station.state.to_json()["update"]["phase"] == "waiting"

    # end of day: the wipe, then the slot is written before the PC powers off
    day_end = asyncio.ensure_future(van.station.end_of_day())
    await van.settle()
    assert stand_in(van).modes_at_install == ["shutting_down"]
    assert van.policy.state.phase == "installing" and van.policy.state.progress == 40
    assert not day_end.done() and van.station.mode == "shutting_down"
    stand_in(van).release.set()
    await day_end
    assert van.station.mode == "off"
    assert van.policy.state.phase == "ready" and van.policy.state.target == "2.0"
    assert van.notice() == ("update.ready", {"version": "2.0"})
    record = json.loads((tmp_path / "state" / "update.json").read_text())
    assert record["slot"] == "b" and record["from"] == "a" and record["boot"] == BOOT_1
    await van.station.close()


async def test_no_session_opens_while_the_slot_is_written(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    await van.station.start()
    await van.policy.install("/media/stick/kioskd-2.0.raucb")
    await van.settle()
    assert stand_in(van).modes_at_install == ["ready"]  # no citizen: written at once
    with pytest.raises(TransitionRefused) as refused:
        await van.station.next_citizen()
    assert refused.value.key == "refused.update.installing"
    stand_in(van).release.set()
    await van.settle()
    assert van.policy.state.phase == "ready"
    await van.station.next_citizen()  # written: the station takes citizens again
    assert van.station.mode == "in_session"
    await van.station.close()


async def test_a_refused_bundle_is_reported_at_once_and_never_handed_to_the_installer(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    stand_in(van).refuse = "update.refused"
    await van.station.start()
    with pytest.raises(UpdateRefused) as refused:
        await van.policy.install("/media/stick/tampered.raucb")
    assert refused.value.key == "update.refused"
    await van.settle()
    assert [c[0] for c in stand_in(van).calls] == ["info"]
    assert van.policy.state.phase == "idle" and not (tmp_path / "state" / "update.json").exists()
    await van.station.next_citizen()  # nothing holds the station
    await van.station.close()


async def test_a_sticks_bundle_is_checked_and_written_from_its_copy_on_the_data_partition(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    van.policy.config = replace(van.policy.config, root_device=lambda path: False)  # a stick: its node is kioskd's
    stick = tmp_path / "stick" / "kioskd-2.0.raucb"
    stick.parent.mkdir()
    stick.write_bytes(b"bundle" * 1000)
    copy = tmp_path / "state" / "downloads" / "file.raucb"
    await van.station.start()
    await van.policy.install(str(stick))
    await van.settle()
    assert stand_in(van).calls == [("info", str(copy)), ("install", str(copy))]  # RAUC never reads the stick
    assert copy.exists()
    stand_in(van).release.set()
    await van.settle()
    assert van.policy.state.phase == "ready" and not copy.exists()  # written: the room given back
    assert stick.exists()
    await van.station.close()


async def test_a_refused_copy_of_a_sticks_bundle_is_removed(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    van.policy.config = replace(van.policy.config, root_device=lambda path: False)
    stand_in(van).refuse = "update.refused"
    stick = tmp_path / "tampered.raucb"
    stick.write_bytes(b"not a bundle")
    await van.station.start()
    with pytest.raises(UpdateRefused):
        await van.policy.install(str(stick))
    assert stand_in(van).calls == [("info", str(tmp_path / "state" / "downloads" / "file.raucb"))]
    assert list((tmp_path / "state" / "downloads").iterdir()) == []
    await van.station.close()


async def test_a_second_install_while_one_waits_is_refused(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    await van.station.start()
    await van.station.next_citizen()
    await van.policy.install("/media/stick/a.raucb")
    with pytest.raises(UpdateRefused) as refused:
        await van.policy.install("/media/stick/b.raucb")
    assert refused.value.key == "update.busy"
    await van.station.close()


def _record(tmp_path: Path, **values: Any) -> None:
    (tmp_path / "state").mkdir(exist_ok=True)
    record = {"version": "2.0", "slot": "b", "from": "a", "from_version": "1.0", "boot": BOOT_1, **values}
    (tmp_path / "state" / "update.json").write_text(json.dumps(record))


async def test_the_next_boot_on_the_new_slot_says_the_update_is_installed_once(tmp_path: Path) -> None:
    _record(tmp_path)
    van = await make_van(tmp_path, boot=BOOT_2, slot="b", fleet=True)
    assert van.policy.state.last == "applied" and van.policy.state.slot == "b"
    assert van.notice() == ("update.applied", {"version": "2.0"})
    await van.settle()
    (message,) = await van.store.outbox()
    assert message.kind == "update" and message.body["event"] == "applied"
    van2 = await make_van(tmp_path, boot="33333333-cccc", slot="b")
    assert van2.notice() is None  # a later boot: nothing more to say
    await van.station.close()
    await van2.station.close()


async def test_a_boot_back_on_the_old_slot_tells_the_agent_and_the_office_it_rolled_back(tmp_path: Path) -> None:
    _record(tmp_path)
    van = await make_van(tmp_path, boot=BOOT_2, slot="a", fleet=True)
    assert van.policy.state.last == "rolled_back" and van.policy.state.last_version == "2.0"
    assert van.notice() == ("update.rolled_back", {"version": "2.0", "running": "1.0"})
    text = van.station.state.to_json()["notices"][-1]["fr"]
    assert text.startswith("Mise à jour refusée, retour à la version précédente")
    await van.settle()
    (message,) = await van.store.outbox()
    assert message.body == {"event": "rolled_back", "version": "2.0", "running": "1.0", "slot": "a"}
    assert not (tmp_path / "state" / "update.json").exists()
    await van.station.close()


async def test_a_power_cut_while_the_slot_is_written_is_told_and_its_copy_removed_at_the_next_boot(
    tmp_path: Path,
) -> None:
    van = await make_van(tmp_path, fleet=True)
    van.policy.config = replace(van.policy.config, root_device=lambda path: False)  # a stick's bundle: copied
    stick = tmp_path / "stick" / "kioskd-2.0.raucb"
    stick.parent.mkdir()
    stick.write_bytes(b"bundle" * 1000)
    await van.station.start()
    await van.policy.install(str(stick))
    await van.settle()
    assert van.policy.state.phase == "installing"
    written = json.loads((tmp_path / "state" / "update.json").read_text())
    assert written["writing"] is True and written["slot"] == "b" and written["version"] == "2.0"
    await van.station.close()  # the power goes: RAUC never returned, the copy is still on the data partition
    assert (tmp_path / "state" / "downloads" / "file.raucb").exists()

    after = await make_van(tmp_path, boot=BOOT_2, slot="a", fleet=True)  # RAUC marked b bad first: a boots
    assert after.policy.state.phase == "idle" and after.policy.state.last == "interrupted"
    assert after.notice() == ("update.interrupted", {"version": "2.0", "running": "1.0"})
    assert after.station.state.to_json()["notices"][-1]["fr"].startswith("Mise à jour 2.0 interrompue")
    assert not (tmp_path / "state" / "update.json").exists()
    assert list((tmp_path / "state" / "downloads").iterdir()) == []  # the 1 GB copy does not stay for ever
    await after.settle()
    (message,) = await after.store.outbox()
    assert message.body == {"event": "interrupted", "version": "2.0", "running": "1.0", "slot": "a"}
    await after.station.start()
    await after.station.next_citizen()  # nothing holds the station
    await after.station.close()


async def test_kioskd_restarted_while_rauc_writes_keeps_the_record_and_says_nothing(tmp_path: Path) -> None:
    _record(tmp_path, writing=True)
    van = await make_van(tmp_path, boot=BOOT_1, slot="a")
    assert van.notice() is None and van.policy.state.last == ""
    assert json.loads((tmp_path / "state" / "update.json").read_text())["writing"] is True
    await van.station.close()


async def test_a_cut_after_rauc_switched_slots_still_counts_as_applied(tmp_path: Path) -> None:
    _record(tmp_path, writing=True)  # RAUC had written and switched, kioskd had not yet said so
    van = await make_van(tmp_path, boot=BOOT_2, slot="b")
    assert van.policy.state.last == "applied" and van.notice() == ("update.applied", {"version": "2.0"})
    await van.station.close()


async def test_kioskd_restarted_after_an_install_still_says_the_update_is_ready(tmp_path: Path) -> None:
    _record(tmp_path)
    van = await make_van(tmp_path, boot=BOOT_1, slot="a")
    assert van.policy.state.phase == "ready"
    assert van.notice() == ("update.ready", {"version": "2.0"})
    await van.station.close()


async def test_a_pc_without_rauc_says_so_and_refuses_installs(tmp_path: Path) -> None:
    van = await make_van(tmp_path)
    (tmp_path / "system.conf").unlink()
    van.policy.start()
    assert van.policy.state.phase == "unavailable"
    with pytest.raises(UpdateRefused) as refused:
        await van.policy.install("/media/stick/a.raucb")
    assert refused.value.key == "update.unavailable"
    await van.station.close()


@pytest.mark.parametrize(
    ("url", "digest", "key"),
    [
        ("https://office.example/v2.raucb", "", "update.refused.hash_missing"),
        ("https://office.example/v2.raucb", "abc", "update.refused.hash_missing"),
        ("ftp://office.example/v2.raucb", "a" * 64, "update.refused.url"),
        ("https:///v2.raucb", "a" * 64, "update.refused.url"),
    ],
)
def test_an_update_order_needs_an_http_url_with_a_host_and_a_sha256(url: str, digest: str, key: str) -> None:
    with pytest.raises(UpdateRefused) as refused:
        check_order(url, digest)
    assert refused.value.key == key


def test_an_update_orders_hash_is_read_in_either_case() -> None:
    assert check_order("http://10.0.0.1:8080/v2.raucb", " " + "AB" * 32 + "\n") == "ab" * 32


async def test_an_order_the_van_resumes_after_a_power_off_and_a_second_one_meanwhile_is_refused(
    tmp_path: Path,
) -> None:
    # the order outlives kioskd: its download starts again at the next start (the server here never answers)
    (tmp_path / "state" / "downloads").mkdir(parents=True)
    order = {"url": "http://127.0.0.1:9/v2.raucb", "sha256": "c" * 64}
    (tmp_path / "state" / "downloads" / "order.json").write_text(json.dumps(order))
    van = await make_van(tmp_path)
    assert van.policy.state.phase == "downloading"
    assert van.notice() == ("update.downloading", {"host": "127.0.0.1"})
    with pytest.raises(UpdateRefused) as refused:
        await van.policy.order("http://127.0.0.1:9/v3.raucb", "d" * 64)
    assert refused.value.key == "update.busy"
    await van.station.close()
    van.policy.close()
