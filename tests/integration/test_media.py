"""The citizen's USB stick through the real FUSE drivers (fusefat, ntfs-3g) on image files: mounted read-only only
in a session, the scans exported to a new folder, the wipe's unmount and verification, hostile media."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kioskd.hal import MediaInserted, MediaRemoved
from tests.conftest import Rig, make_rig
from tests.integration.stick_images import digest_tree, exported, fill, make_image, require_fuse

CANARY = b"canary-stick-7f3a9 bulletin de salaire DUPONT"
OWN = {"bulletin.pdf": CANARY, "photos/identite.jpg": b"\xff\xd8canary-photo-7f3a9" * 100}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    require_fuse()
    r = await make_rig(tmp_path)
    yield r
    await r.station.close()
    for _, device in r.devices.all():
        await device.close()


def media(rig: Rig) -> Any:
    assert rig.devices.media is not None
    return rig.devices.media


async def until(rig: Rig, check: Any, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
        await rig.station.idle()
    raise AssertionError("condition never met")


async def next_citizen(rig: Rig) -> None:
    """The wipe (and the next session) while simulated time passes: the print grace waits on the clock, the
    drivers' exit on real time."""
    await rig.drive(rig.station.next_citizen(), step=0.05, limit=100_000)


def mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return f.read()


def mounted(rig: Rig) -> str:
    sticks = media(rig).state.sticks
    return sticks[-1].mounted if sticks else "absent"


async def in_session_with_stick(rig: Rig, image: Path) -> Path:
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.sim("plug", str(image))
    await until(rig, lambda: mounted(rig) == "ro")
    assert rig.station.session is not None
    return rig.station.session.workspace.root / "media" / "cle-1"


def write_scans(rig: Rig, count: int, size: int = 50_000) -> dict[str, bytes]:
    assert rig.station.session is not None
    scans = {}
    for n in range(count):
        data = b"%PDF-1.4 scan " + os.urandom(size)
        (rig.station.session.workspace.scans / f"scan-{n + 1:02d}.pdf").write_bytes(data)
        scans[f"scan-{n + 1:02d}.pdf"] = data
    return scans


def nothing_of_the_stick_under(*roots: Path, needle: bytes = b"canary-stick-7f3a9") -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            stick_image = path.name.endswith(".img")
            if path.is_file() and not path.is_symlink() and not stick_image and needle in path.read_bytes():
                found.append(str(path))
    return found


@pytest.mark.parametrize("fs", ["vfat", "ntfs"])
async def test_a_stick_is_read_only_in_the_session_and_the_wipe_leaves_nothing_of_it(
    rig: Rig, tmp_path: Path, fs: str
) -> None:
    image = make_image(tmp_path / "stick.img", fs)
    fill(image, fs, OWN)
    before = digest_tree(image, fs)
    where = await in_session_with_stick(rig, image)
    # the session app's file picker finds it, read-only, nosuid,nodev,noexec
    assert (where / "bulletin.pdf").read_bytes() == CANARY
    with pytest.raises(OSError):
        (where / "new.txt").write_bytes(b"x")
    line = next(line for line in mountinfo().splitlines() if f" {where} " in line)
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(line.split()[5].split(","))
    # the driver runs as an unprivileged user, never root
    pids = media(rig).part._volumes["sim-1"].pids
    assert pids and all(os.stat(f"/proc/{pid}").st_uid != 0 for pid in pids)
    snapshot = json.dumps((await rig.station.snapshot()).to_json(), ensure_ascii=False)
    assert "Clé USB du citoyen : lecture seule" in snapshot and "CITOYEN" in snapshot
    assert "bulletin" not in snapshot and "identite" not in snapshot
    # a citizen's copy into downloads is the session's, wiped with it
    assert rig.station.session is not None
    (rig.station.session.workspace.downloads / "copie.pdf").write_bytes((where / "bulletin.pdf").read_bytes())

    await next_citizen(rig)
    outcome = rig.station.wipes[-1]
    assert outcome.verified, outcome.failed_handlers()
    assert {v.name: v.ok for v in outcome.verdicts}["media"]
    assert outcome.receipt is not None and outcome.receipt.media_mounted == 1
    assert f" {where} " not in mountinfo()
    assert nothing_of_the_stick_under(rig.runtime, rig.state_dir) == []
    assert digest_tree(image, fs) == before


async def test_outside_a_session_a_stick_is_not_mounted_until_a_citizen_is_in(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    await rig.station.start()
    await rig.sim("plug", str(image))
    await rig.station.idle()
    assert mounted(rig) == "no" and rig.of(MediaInserted)
    assert any(n.key == "media.outside_session" for n in rig.station.state.notices)
    await rig.station.next_citizen()
    await until(rig, lambda: mounted(rig) == "ro")


async def test_the_previous_citizens_stick_left_plugged_in_is_not_opened_for_the_next(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    await in_session_with_stick(rig, image)
    await next_citizen(rig)
    await rig.station.idle()
    assert rig.station.mode == "in_session" and mounted(rig) == "no"
    assert any(n.key == "media.left_behind" for n in rig.station.state.notices)
    await rig.sim("pull")
    await rig.sim("plug", str(image))  # the new citizen plugs theirs in
    await until(rig, lambda: mounted(rig) == "ro")


@pytest.mark.parametrize("fs", ["vfat", "ntfs"])
async def test_export_writes_the_scans_in_a_new_folder_and_leaves_the_stick_read_only_and_its_files_intact(
    rig: Rig, tmp_path: Path, fs: str
) -> None:
    image = make_image(tmp_path / "stick.img", fs)
    fill(image, fs, OWN)
    before = digest_tree(image, fs)
    await in_session_with_stick(rig, image)
    scans = write_scans(rig, 5)
    answer = await rig.station.media_export(None)
    assert answer["ok"] and answer["files"] == 5 and answer["folder"].startswith("Scans ")
    assert mounted(rig) == "ro"
    assert "copié" in answer["message"]["fr"]
    answer2 = await rig.station.media_export(["scan-02.pdf"])
    assert answer2["files"] == 1 and answer2["folder"] != answer["folder"]
    await rig.station.media_eject()
    assert mounted(rig) == "no"
    assert digest_tree(image, fs, skip="Scans") == before
    copies = exported(image, fs, "Scans")
    assert {k.split("/", 1)[1]: v for k, v in copies.items() if k.startswith(answer["folder"] + "/")} == scans
    await next_citizen(rig)
    receipt = rig.station.wipes[-1].receipt
    assert receipt is not None and (receipt.media_mounted, receipt.media_exported) == (1, 6)


async def test_a_write_protected_stick_says_so_and_is_not_changed(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    fill(image, "vfat", OWN)
    raw = hashlib.sha256(image.read_bytes()).hexdigest()
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.sim("plug", str(image), "locked")
    await until(rig, lambda: mounted(rig) == "ro")
    write_scans(rig, 2)
    answer = await rig.station.media_export(None)
    assert not answer["ok"] and answer["fault"] == "write-protected" and answer["files"] == 0
    assert "protégée en écriture" in answer["message"]["fr"]
    assert mounted(rig) == "ro"
    await next_citizen(rig)
    assert rig.station.wipes[-1].verified
    assert hashlib.sha256(image.read_bytes()).hexdigest() == raw


async def test_a_full_stick_says_so_and_keeps_its_files(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat", size_mb=2)
    fill(image, "vfat", OWN)
    before = digest_tree(image, "vfat")
    await in_session_with_stick(rig, image)
    write_scans(rig, 3, size=1_000_000)
    answer = await rig.station.media_export(None)
    assert answer["fault"] == "full" and "pleine" in answer["message"]["fr"]
    assert mounted(rig) == "ro"
    await next_citizen(rig)
    assert digest_tree(image, "vfat", skip="Scans") == before


async def test_a_stick_pulled_out_mid_copy_is_detached_and_its_files_are_intact(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    fill(image, "vfat", OWN)
    before = digest_tree(image, "vfat")
    await in_session_with_stick(rig, image)
    files = sorted(write_scans(rig, 10, size=200_000))
    assert rig.station.session is not None
    scans = [rig.station.session.workspace.scans / name for name in files]
    backend = media(rig).part

    def pull_at_third(done: int) -> None:
        if done == 3:
            backend.depart("sim-1")

    result = await backend.export("sim-1", scans, pull_at_third)
    assert result.fault == "pulled" and result.files == 3
    await rig.station.idle()
    removed = rig.of(MediaRemoved)
    assert removed and not removed[-1].ejected
    assert any(n.key == "media.pulled" for n in rig.station.state.notices)
    await next_citizen(rig)
    assert rig.station.wipes[-1].verified
    assert digest_tree(image, "vfat", skip="Scans") == before


async def test_a_process_holding_a_file_of_the_stick_does_not_keep_it_mounted_after_the_wipe(
    rig: Rig, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    fill(image, "vfat", OWN)
    where = await in_session_with_stick(rig, image)
    held = (where / "bulletin.pdf").open("rb")
    holder = await asyncio.create_subprocess_exec("sleep", "60", stdin=held)
    held.close()
    try:
        assert rig.station.session is not None
        assert media(rig).holders(rig.station.session.id) == 1
        await next_citizen(rig)
        assert rig.station.wipes[-1].verified
        assert f" {where} " not in mountinfo()
    finally:
        holder.kill()
        await holder.wait()


# ------------------------------------------------------------------------------------------------ hostile media
def scramble(image: Path) -> None:
    """The boot sector's geometry and both FATs overwritten: blkid may still call it vfat."""
    with open(image, "r+b") as f:
        f.seek(11)
        f.write(os.urandom(40))
        f.seek(512)
        f.write(os.urandom(64 * 1024))


async def test_a_corrupt_file_system_is_a_clean_notice_and_nothing_is_mounted(rig: Rig, tmp_path: Path) -> None:
    image = make_image(tmp_path / "stick.img", "vfat")
    scramble(image)
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(os.urandom(4 << 20))
    await rig.station.start()
    await rig.station.next_citizen()
    for stick in (image, garbage):
        await rig.sim("plug", str(stick))
        await rig.station.idle()
        await asyncio.sleep(0.5)
        await rig.station.idle()
    keys = [n.key for n in rig.station.state.notices if n.topic == "media"]
    assert keys and keys[-1] in ("media.corrupt", "media.unknown-filesystem", "media.mounted_ro")
    assert media(rig).state.sticks[-1].mounted == "no"  # random bytes are no file system
    await next_citizen(rig)
    assert rig.station.wipes[-1].verified


async def test_hostile_names_a_huge_tree_and_a_link_out_give_a_clean_listing_and_touch_nothing_outside(
    rig: Rig, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"station file")
    image = make_image(tmp_path / "stick.img", "ntfs", size_mb=128)
    hostile = {"evil\nname.pdf": CANARY, "..\\..\\etc\\passwd": CANARY, "-rf": CANARY}
    tree = {f"tree/d{i // 500}/f{i}.txt": b"x" for i in range(10_000)}
    fill(image, "ntfs", {**hostile, **tree}, links={"out": str(outside), "passwd": "/etc/passwd"})
    before = digest_tree(image, "ntfs")
    where = await in_session_with_stick(rig, image)
    listing = await asyncio.to_thread(lambda: sum(len(files) for _, _, files in os.walk(where)))
    assert listing >= 10_003
    assert sorted(os.listdir(where))[:4] == sorted(["-rf", "..\\..\\etc\\passwd", "evil\nname.pdf", "out"])[:4]
    assert os.readlink(where / "out") == str(outside)  # shown as a link; nothing of kioskd follows it
    snapshot = json.dumps((await rig.station.snapshot()).to_json(), ensure_ascii=False)
    assert "evil" not in snapshot and "passwd" not in snapshot
    write_scans(rig, 2)
    assert (await rig.station.media_export(None))["files"] == 2
    await next_citizen(rig)
    assert rig.station.wipes[-1].verified
    assert (outside / "keep.txt").read_bytes() == b"station file"
    assert digest_tree(image, "ntfs", skip="Scans") == before
    log = "\n".join(str(e) for e in rig.events)
    assert "evil" not in log and "keep.txt" not in log


async def test_a_private_tmpdir_does_not_keep_the_unprivileged_driver_from_mounting(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # seen: a browser's test fixture set TMPDIR to a 0700 folder of root's; the driver's user could not reach its
    # staging folder there and every stick was reported "corrupt"
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr("tempfile.tempdir", None)
    image = make_image(tmp_path / "stick.img", "vfat")
    fill(image, "vfat", OWN)
    where = await in_session_with_stick(rig, image)
    assert (where / "bulletin.pdf").read_bytes() == CANARY
    assert not any(private.iterdir())
    await next_citizen(rig)
    assert rig.station.wipes[-1].verified


def fat32_image(path: Path, size_mb: int) -> Path:
    """A FAT32 stick (``make_image`` lets mkfs.vfat choose, FAT16 at these sizes; most sticks are FAT32)."""
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "CITOYEN", str(path)], check=True, capture_output=True)
    return path


async def test_a_fat32_stick_takes_the_scans_though_its_driver_reports_no_free_space(rig: Rig, tmp_path: Path) -> None:
    # fusefat's statfs gives 0 blocks and 0 free on FAT32 (seen in the virtual van: every export said "full")
    image = fat32_image(tmp_path / "fat32.img", 64)
    fill(image, "vfat", OWN)
    before = digest_tree(image, "vfat")
    await in_session_with_stick(rig, image)
    write_scans(rig, 2)
    answer = await rig.station.media_export(None)
    assert answer["ok"] and answer["files"] == 2, answer
    await next_citizen(rig)
    assert len(exported(image, "vfat", "Scans")) == 2
    assert digest_tree(image, "vfat", skip="Scans") == before


async def test_a_full_fat32_stick_says_full_and_keeps_only_complete_copies(rig: Rig, tmp_path: Path) -> None:
    image = fat32_image(tmp_path / "fat32-full.img", 34)
    fill(image, "vfat", {**OWN, "gros.bin": b"\x5a" * (31 << 20)})
    before = digest_tree(image, "vfat")
    await in_session_with_stick(rig, image)
    write_scans(rig, 3, size=1_000_000)
    answer = await rig.station.media_export(None)
    assert answer["fault"] == "full" and "pleine" in answer["message"]["fr"], answer
    assert mounted(rig) == "ro"
    await next_citizen(rig)
    copies = exported(image, "vfat", "Scans")
    assert len(copies) == answer["files"] and all(len(data) > 1_000_000 for data in copies.values())
    assert digest_tree(image, "vfat", skip="Scans") == before
