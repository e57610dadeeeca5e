"""The download's own decisions, without a server: the room it needs on the data partition, the older downloads
it clears, what of the URL the journal may say (tests/integration/test_update_download.py has the real server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.errors import UpdateRefused
from kioskd.update.download import RESERVE, Download


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
