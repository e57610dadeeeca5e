"""A/B updates with the real RAUC (Debian's rauc 1.8 service on a private D-Bus, file slots, an ESP directory) and
update bundles made by image-build/build.py: a tampered or foreign-signed bundle is refused with a clear message
and nothing is written; a signed one lands in the inactive slot with its kernel on the ESP and a counting
systemd-boot entry, and kioskd's update policy takes it only when no citizen is there."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kioskd import messages
from kioskd.errors import UpdateRefused
from kioskd.update import bootloader
from tests.integration.rauc_service import KERNEL, RaucVan, build_module, esp_files, rauc_van, sha256
from tests.unit.test_update_policy import make_van

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def van(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaucVan]:
    with rauc_van(tmp_path_factory.mktemp("rauc")) as running:
        yield running


@pytest.fixture(scope="module")
def v2(van: RaucVan) -> Path:
    return van.bundle("2.0-test")


def tampered(bundle: Path, where: str) -> Path:
    """A copy with one bit flipped in the squashfs payload, or in the CMS signature appended after it."""
    data = bytearray(bundle.read_bytes())
    at = 4096 if where == "payload" else len(data) - 200
    copy = bundle.with_name(f"tampered-{where}.raucb")
    data[at] ^= 0x01
    copy.write_bytes(bytes(data))
    return copy


def slot_facts(slot: Path) -> dict[str, object]:
    """What the slot's ext4 holds, read with debugfs (nothing mounted): files, and the file system's size."""

    def debugfs(request: str) -> str:
        return subprocess.run(["debugfs", "-R", request, str(slot)], capture_output=True, text=True).stdout

    header = subprocess.run(["dumpe2fs", "-h", str(slot)], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    return {
        "image.json": debugfs("cat /usr/lib/kioskd/image.json"),
        "etc/kioskd": debugfs("ls -l /etc/kioskd"),
        "fstab": debugfs("cat /etc/fstab"),
        "bytes": int(fields["Block count"]) * int(fields["Block size"]),
    }


@pytest.mark.parametrize("where", ["payload", "signature"])
async def test_a_tampered_update_is_refused_with_a_clear_message_and_nothing_written(
    van: RaucVan, v2: Path, where: str
) -> None:
    bad = tampered(v2, where)
    before = (sha256(van.slots["b"]), esp_files(van.esp))
    rauc = van.client()
    with pytest.raises(UpdateRefused) as checked:
        await rauc.info(bad)
    assert checked.value.key == "update.refused"
    assert messages.text(checked.value.key, "fr").startswith("Mise à jour refusée : signature non valable")
    with pytest.raises(UpdateRefused) as installed:  # the service itself, asked anyway, writes nothing either
        await rauc.install(bad)
    assert installed.value.key in ("update.refused.signature", "update.refused.format"), installed.value.what
    assert (sha256(van.slots["b"]), esp_files(van.esp)) == before
    assert bootloader.primary(van.esp) == "a"


async def test_an_update_signed_by_another_key_is_refused(van: RaucVan, tmp_path: Path) -> None:
    other = build_module().test_keys(tmp_path / "other-cache")
    foreign = van.bundle("6.6.6", name="foreign", keys=other)
    before = (sha256(van.slots["b"]), esp_files(van.esp))
    with pytest.raises(UpdateRefused) as refused:
        await van.client().install(foreign)
    assert refused.value.key == "update.refused.signature", refused.value.what
    assert (sha256(van.slots["b"]), esp_files(van.esp)) == before


async def test_a_missing_bundle_is_named_as_missing(van: RaucVan, tmp_path: Path) -> None:
    with pytest.raises(UpdateRefused) as refused:
        await van.client().info(tmp_path / "nowhere.raucb")
    assert refused.value.key == "update.refused.missing"


async def test_the_station_installs_a_signed_update_after_the_citizen_into_slot_b(
    van: RaucVan, v2: Path, tmp_path: Path
) -> None:
    station = await make_van(tmp_path, rauc=van.client())
    await station.station.start()
    await station.station.next_citizen()
    state = await station.policy.install(str(v2))
    assert state.phase == "waiting" and state.target == "2.0-test"  # the service verified it and read its version
    await asyncio.sleep(1.0)
    assert bootloader.primary(van.esp) == "a" and not (van.esp / "vmlinuz-b").exists()
    await station.station.end_of_day()
    for _ in range(600):
        if station.policy.state.phase not in ("waiting", "installing"):
            break
        await asyncio.sleep(0.1)
    assert station.policy.state.phase == "ready", station.policy.state
    # the slot holds the update's root, grown to the slot (resize=true), without the build machine's profile
    facts = slot_facts(van.slots["b"])
    assert '"2.0-test"' in facts["image.json"]
    assert "profile.toml" not in facts["etc/kioskd"]
    assert "PARTLABEL=esp /efi vfat" in facts["fstab"] and "PARTLABEL=kioskd-data /data" in facts["fstab"]
    assert facts["bytes"] == van.slots["b"].stat().st_size
    # its kernel went to the ESP (the bundle's hook) and slot b boots next, three tries to prove itself
    assert (van.esp / "vmlinuz-b").read_bytes() == KERNEL + b"2.0-test"
    assert (van.esp / "initrd-b").read_bytes() == b"initramfs 2.0-test"
    names = [e.path.name for e in bootloader.entries(van.esp)]
    assert names == ["kioskd-0002-b+3.conf", "kioskd-0001-a.conf"]
    assert bootloader.primary(van.esp) == "b"
    status = (van.work / "rauc.status").read_text()
    assert "bundle.version=2.0-test" in status
    await station.station.close()


async def test_the_virtual_vans_broken_v3_is_v2_repacked_signed_with_a_kioskd_that_cannot_start(
    van: RaucVan, tmp_path: Path
) -> None:
    # tests/vm/test_update.py's repack, on a small v2: RAUC's service takes it (signature, version) and its root
    # holds the drop-in that clears kioskd's ExecStart: a bad update that only a boot can tell
    from tests.vm import test_update

    v2 = van.bundle(test_update.V2, name="vm-v2")
    keys = Path(van.keys.cert).parent
    v3 = test_update.repack_broken(v2, tmp_path, keys=keys)
    bundle = await van.client().info(v3)
    assert bundle.version == test_update.V3 and bundle.compatible == van.compatible
    root = tmp_path / "v3-root"
    extract = ["rauc", f"--keyring={van.keys.cert}", "extract", str(v3), str(root)]
    await asyncio.to_thread(subprocess.run, extract, check=True, capture_output=True)

    def debugfs(request: str) -> str:
        return subprocess.run(["debugfs", "-R", request, str(root / "root.ext4")], capture_output=True,
                              text=True).stdout  # fmt: skip

    assert debugfs("cat /etc/systemd/system/kioskd.service.d/broken.conf") == test_update.BROKEN
    assert test_update.V3 in debugfs("cat /usr/lib/kioskd/image.json")
    assert "payload" in debugfs("ls /opt/kioskd")  # the rest of v2's root is still there
