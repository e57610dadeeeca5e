"""The workspace's walks against a tampered layout: counts, the scans list and reads, the layout check, clear and
remove never follow a link out of the workspace, and a FIFO or a huge sparse file never blocks a reader."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from kioskd.session import workspace as ws_ops
from kioskd.session.workspace import MAX_SCAN_BYTES, Workspace, check_layout, count_files, create, read_regular


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_text("precious")
    (victim / "sub" / "deeper.pdf").write_text("precious")
    return victim


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _intact(victim: Path) -> bool:
    return (victim / "precious.txt").read_text() == "precious" and (victim / "sub" / "deeper.pdf").exists()


async def _workspace(tmp_path: Path) -> Workspace:
    return await create(tmp_path / "ws", "directory", "10M")


async def test_counts_follow_no_folder_swapped_for_a_link_and_no_link_inside(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    os.rename(ws.scans, ws.root / "scans.old")
    ws.scans.symlink_to(victim)
    (ws.downloads / "a" / "b").mkdir(parents=True)
    (ws.downloads / "a" / "b" / "c").symlink_to(victim)
    (ws.downloads / "file").symlink_to(victim / "precious.txt")
    (ws.downloads / "a" / "real.pdf").write_text("citizen")
    os.mkfifo(ws.downloads / "fifo")
    assert ws.counts() == {"scans": 0, "downloads": 1}  # only the citizen's one regular file
    assert ws.scan_files() == []


async def test_clear_unlinks_a_swapped_folder_and_deep_links_without_following_them(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    ws.browser.rmdir()
    ws.browser.symlink_to(victim)
    (ws.downloads / "a").mkdir()
    (ws.downloads / "a" / "c").symlink_to(victim)
    (ws.downloads / "file").symlink_to(victim / "precious.txt")
    await ws_ops.clear(ws.browser)
    await ws_ops.clear(ws.downloads)
    assert _intact(victim)
    assert not _exists(ws.browser) and list(ws.downloads.iterdir()) == []


async def test_remove_takes_the_workspace_and_leaves_what_its_links_point_to(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    os.rename(ws.home, ws.root / "home.old")
    ws.home.symlink_to(victim)
    (ws.tmp / "deep").mkdir()
    (ws.tmp / "deep" / "link").symlink_to(victim / "sub")
    await ws_ops.remove(ws.root)
    assert _intact(victim) and not _exists(ws.root)
    assert ws_ops.leftovers(ws.root) == []


async def test_the_layout_check_counts_and_unlinks_what_replaced_a_folder(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    os.rename(ws.downloads, ws.root / "downloads.old")
    ws.downloads.symlink_to(victim)
    ws.prints.rmdir()
    ws.prints.write_text("a file where a folder was")
    ws.tmp.rmdir()
    os.mkfifo(ws.tmp)
    os.mkfifo(ws.scans / "scan-20261201-100001.pdf")
    (ws.scans / "scan-20261201-100002.pdf").symlink_to(victim / "precious.txt")
    (ws.scans / "scan-20261201-100003.pdf").write_bytes(b"%PDF-1.4 a real scan")
    assert check_layout(ws.root) == 5  # three folders, a FIFO and a link among the scans
    assert not _exists(ws.downloads) and not _exists(ws.prints) and not _exists(ws.tmp)
    assert _intact(victim)
    assert check_layout(ws.root) == 2  # the scans' strays go with the scans handler, not here
    assert ws.scan_files() == [("scan-20261201-100003.pdf", 20)]


async def test_a_fifo_a_link_and_a_huge_sparse_file_are_refused_at_once(tmp_path: Path) -> None:
    ws = await _workspace(tmp_path)
    os.mkfifo(ws.scans / "scan-20261201-100001.pdf")
    (ws.scans / "scan-20261201-100002.pdf").symlink_to(tmp_path / "elsewhere.pdf")
    (tmp_path / "elsewhere.pdf").write_bytes(b"%PDF-1.4 not the citizen's")
    (ws.scans / "scan-20261201-100003.pdf").touch()
    os.truncate(ws.scans / "scan-20261201-100003.pdf", 64 << 30)
    (ws.scans / "scan-20261201-100004.pdf").write_bytes(b"%PDF-1.4 ok")
    start = time.monotonic()
    # a blocking open of the FIFO would never return: the wait_for turns that into a failure, not a hung test
    answers = await asyncio.wait_for(
        asyncio.gather(*(asyncio.to_thread(ws.read_scan, f"scan-20261201-10000{i}.pdf") for i in (1, 2, 3, 4))), 10
    )
    assert answers == [None, None, None, b"%PDF-1.4 ok"]
    assert time.monotonic() - start < 5
    assert ws.read_scan("../home") is None and ws.read_scan("..") is None
    assert read_regular(ws.scans / "scan-20261201-100004.pdf", limit=4) is None  # the size bound
    assert MAX_SCAN_BYTES >= 100_000_000  # the largest upload budget a profile accepts


async def test_counts_and_clear_survive_a_tree_deeper_than_the_walk_goes(tmp_path: Path) -> None:
    ws = await _workspace(tmp_path)
    deep = ws.downloads
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(ws_ops.MAX_DEPTH + 20):  # relative to a descriptor: the path would outgrow PATH_MAX
        os.mkdir("d", dir_fd=fd)
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)
    (ws.downloads / "d" / "top.pdf").write_text("citizen")
    assert count_files(ws.downloads) == 1  # the walk stops descending at MAX_DEPTH, it does not fail
    await ws_ops.clear(ws.downloads)  # kioskd's walk hands the depths to find(1), which never follows a link
    assert list(ws.downloads.iterdir()) == []


async def test_a_document_to_print_is_never_written_or_read_through_a_planted_link(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    (ws.prints / "print-1.pdf").symlink_to(victim / "precious.txt")
    fd = ws.write_print("print-1.pdf", b"%PDF-1.4 the citizen's")
    try:
        # the app swaps the file for a link again after the write: the printer reads the descriptor, not the name
        (ws.prints / "print-1.pdf").unlink()
        (ws.prints / "print-1.pdf").symlink_to(victim / "precious.txt")
        assert await asyncio.to_thread(Path(f"/proc/self/fd/{fd}").read_bytes) == b"%PDF-1.4 the citizen's"
    finally:
        os.close(fd)
    assert _intact(victim)


async def test_a_scan_is_never_saved_through_a_swapped_scans_folder(tmp_path: Path) -> None:
    from kioskd.policies.scanning_pipeline import save_pdf

    victim = _victim(tmp_path)
    ws = await _workspace(tmp_path)
    ws.scans.rmdir()
    ws.scans.symlink_to(victim)
    try:
        save_pdf(b"%PDF-1.4 the citizen's", ws.scans, 1_764_583_200.0)
    except OSError:
        pass
    else:
        raise AssertionError("the scan was saved through a link out of the workspace")
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt", "sub"]
