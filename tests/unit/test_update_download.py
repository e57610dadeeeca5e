"""The download's own decisions, without a server: the room it needs on the data partition, the older downloads
it clears, what of the URL the journal may say (tests/integration/test_update_download.py has the real server); a
bundle file on a device that is not root's (a stick) copied onto the data partition, as RAUC reads none there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.errors import UpdateRefused
from kioskd.update.download import RESERVE, Download, on_root_device, stage


def a_download(folder: Path, url: str = "https://office.example/v2.raucb?token=s3cret") -> Download:
    folder.mkdir(parents=True, exist_ok=True)
    return Download(url, "a" * 64, folder, ManualClock())


def test_a_bundle_bigger_than_the_data_partitions_free_room_is_refused_before_a_byte(tmp_path: Path) -> None:
    download = a_download(tmp_path / "downloads")
    free = shutil.disk_usage(tmp_path).free
    download._room_for(free - RESERVE - (1 << 20))  # fits, with the reserve kept for the store
    with pytest.raises(UpdateRefused) as refused:
        download._room_for(free - RESERVE + (1 << 30))
    assert refused.value.key == "update.refused.space"


def test_a_new_order_clears_older_downloads_and_keeps_its_own_part(tmp_path: Path) -> None:
    download = a_download(tmp_path / "downloads")
    old_part, old_bundle = download.folder / f"{'b' * 64}.part", download.folder / f"{'c' * 64}.raucb"
    for path in (old_part, old_bundle, download.part, download.folder / "order.json"):
        path.write_bytes(b"x")
    download._forget_others()
    assert sorted(p.name for p in download.folder.iterdir()) == sorted([download.part.name, "order.json"])


def test_the_journal_names_the_host_only(tmp_path: Path) -> None:
    download = a_download(tmp_path / "downloads")
    assert download.host == "office.example"  # never the path or its token


async def test_a_bundle_on_a_device_that_is_not_roots_is_copied_onto_the_data_partition(tmp_path: Path) -> None:
    source = tmp_path / "stick" / "van-2.0.raucb"
    source.parent.mkdir()
    source.write_bytes(b"bundle" * 300_000)
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / f"{'b' * 64}.part").write_bytes(b"x")  # an older download: the data partition holds one bundle
    (folder / "order.json").write_text("{}")
    copy = await stage(source, folder, root_device=lambda path: False)
    assert copy == folder / "file.raucb" and copy.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["file.raucb", "order.json"]
    assert source.exists()  # the stick is only read


async def test_a_bundle_on_a_root_device_or_missing_is_left_where_it_is_for_raucs_check(tmp_path: Path) -> None:
    source = tmp_path / "van-2.0.raucb"
    source.write_bytes(b"bundle")
    assert await stage(source, tmp_path / "downloads", root_device=lambda path: True) == source
    missing = tmp_path / "gone.raucb"  # RAUC's check says so (kioskd.update.rauc tells that refusal apart)
    assert await stage(missing, tmp_path / "downloads", root_device=lambda path: False) == missing
    assert not (tmp_path / "downloads").exists()


def test_a_file_with_no_block_device_under_it_is_not_on_a_root_device() -> None:
    assert on_root_device(Path("/proc/self/status")) is False  # procfs: no node, RAUC would refuse it too
    assert on_root_device(Path("/nonexistent/van.raucb")) is False
