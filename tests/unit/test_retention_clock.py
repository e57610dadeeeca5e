"""Retention on a clock it cannot trust (issue 18): a wall clock years ahead, or years behind, must not delete the
receipts and visits of a van; what was written in the last day of uptime is never deleted; a store it cannot read
is set aside, not a crash."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kioskd.clock import CLOCK_FLOOR, ManualClock
from kioskd.profile import ActivityConfig
from kioskd.records.retention import CONFIRM, DAY_SECONDS, Retention
from kioskd.records.store import Activity, Receipt, Store

PARIS = ZoneInfo("Europe/Paris")
CONFIG = ActivityConfig(retention_months=13)


def epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=PARIS).timestamp()


class Uptime:
    """The odometer's source: the test says how much uptime has passed since the rows were written."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _write(store: Store, when: str) -> None:
    at = epoch(when)
    activity = Activity(None, when[:10], int(when[11:13]), at, 600.0, 0, 0, "next")
    await store.add_receipt(Receipt("s", at, at + 600, "next", True, [], []), activity)


async def _counts(store: Store) -> tuple[int, int]:
    receipts, visits = len(await store.receipts(1000)), 0
    for month in (f"{y}-{m:02d}" for y in range(2023, 2030) for m in range(1, 13)):
        visits += len(await store.activity(month))
    return receipts, visits


async def _trusted_run(store: Store, wall: str) -> None:
    """A run of kioskd with a right clock, which the retention remembers as the last trusted time."""
    retention = Retention(store, CONFIG, ManualClock(start_wall=epoch(wall)))
    await retention.purge()
    assert retention.paused == ""


async def test_a_clock_two_years_ahead_at_start_keeps_every_receipt_and_visit(tmp_path: Path) -> None:
    uptime = Uptime()
    store = Store(tmp_path / "kioskd.sqlite", uptime=uptime)
    for month in range(1, 12):  # a year of tour, written a month of uptime ago and more
        await _write(store, f"2026-{month:02d}-10 10:00")
    uptime.now = 30 * DAY_SECONDS
    await _trusted_run(store, "2026-12-01 08:00")
    assert await _counts(store) == (11, 11)
    uptime.now += DAY_SECONDS
    ahead = Retention(store, CONFIG, ManualClock(start_wall=epoch("2028-12-02 08:00")))  # a bad NTP answer
    assert await ahead.purge() == {}
    assert "jumped" in ahead.paused
    assert await _counts(store) == (11, 11), "a clock two years ahead deleted receipts"
    # a week of uptime later the jump is believed (the doctor has said so all week): then it deletes
    uptime.now += CONFIRM + 1
    await ahead.purge()
    assert ahead.paused == ""
    assert await _counts(store) == (0, 0)


async def test_records_written_with_a_clock_years_behind_survive_the_next_start_with_the_right_clock(
    tmp_path: Path,
) -> None:
    uptime = Uptime()
    store = Store(tmp_path / "kioskd.sqlite", uptime=uptime)
    for day in range(1, 6):  # a week on tour with an RTC battery gone: the PC thinks it is 2024
        await _write(store, f"2024-03-{day:02d} 10:00")
        uptime.now += 8 * 3600
    behind = Retention(store, CONFIG, ManualClock(start_wall=epoch("2024-03-06 08:00")))
    assert await behind.purge() == {}
    assert "floor" in behind.paused
    uptime.now += 3 * DAY_SECONDS  # more than a day of uptime later, the clock is right again
    right = Retention(store, CONFIG, ManualClock(start_wall=epoch("2026-12-01 08:00")))
    await right.purge()
    assert right.paused == ""
    assert await _counts(store) == (5, 5), "records of a wrong clock were deleted by their wrong date"
    # they age by the odometer instead: gone once the retention's length of uptime has passed
    uptime.now += 14 * 31 * DAY_SECONDS
    await _trusted_run(store, "2026-12-02 08:00")
    assert await _counts(store) == (0, 0)


async def test_what_was_written_in_the_last_day_of_uptime_is_never_deleted(tmp_path: Path) -> None:
    uptime = Uptime()
    store = Store(tmp_path / "kioskd.sqlite", uptime=uptime)
    await _write(store, "2026-03-10 10:00")  # really old, written two days of uptime ago
    uptime.now = DAY_SECONDS
    await _write(store, "2026-03-11 10:00")  # dated as old (the clock was two years behind), but written today
    uptime.now = 2 * DAY_SECONDS - 60
    retention = Retention(store, CONFIG, ManualClock(start_wall=epoch("2028-06-01 08:00")))
    assert await retention.purge() == {"activity": 1, "receipts": 1, "outbox": 0}
    assert [r.closed_at for r in await store.receipts()] == [epoch("2026-03-11 10:00") + 600]


async def test_a_clock_before_the_floor_deletes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "kioskd.sqlite", uptime=Uptime())
    await _write(store, "2023-01-10 10:00")
    clock = ManualClock(start_wall=CLOCK_FLOOR - 400 * DAY_SECONDS)
    retention = Retention(store, CONFIG, clock)
    assert await retention.purge() == {}
    assert await _counts(store) == (1, 1)


# ----------------------------------------------------------------------------------------------- the file
def _head_and_mode(path: Path) -> tuple[bytes, int]:
    return path.read_bytes()[:16], stat.S_IMODE(path.stat().st_mode)


async def test_a_garbage_store_is_set_aside_and_a_new_one_made(tmp_path: Path) -> None:
    path = tmp_path / "kioskd.sqlite"
    path.write_bytes(b"\x00garbage, not a database" * 200)
    store = Store(path)
    assert store.set_aside is not None and "not a database" in store.set_aside.what
    head, mode = _head_and_mode(Path(store.set_aside.path))
    assert head.startswith(b"\x00garbage") and mode == 0o600
    assert await store.add_receipt(Receipt("s", 1.0, CLOCK_FLOOR + 1.0, "next", True, [], []))
    assert len(await Store(path).receipts()) == 1


async def test_a_truncated_store_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "kioskd.sqlite"
    store = Store(path)
    for n in range(200):
        await store.add_receipt(Receipt(f"s{n}", 1.0, CLOCK_FLOOR + n, "next", True, [{"name": "x" * 200}], []))
    store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._close()
    os.truncate(path, path.stat().st_size // 2)
    again = Store(path)
    assert again.set_aside is not None, "a truncated store was taken as it is"
    assert await again.receipts() == []


async def test_a_store_of_another_schema_is_set_aside(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "kioskd.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE receipts (session TEXT, whatever TEXT)")
    store = Store(path)
    assert store.set_aside is not None and "receipts" in store.set_aside.what
    assert await store.add_receipt(Receipt("s", 1.0, CLOCK_FLOOR + 1.0, "next", True, [], []))


async def test_the_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = Store(tmp_path / "kioskd.sqlite")
        await store.add_receipt(Receipt("s", 1.0, CLOCK_FLOOR + 1.0, "next", True, [], []))
    finally:
        os.umask(old)
    for name in ("kioskd.sqlite", "kioskd.sqlite-wal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) & 0o077 == 0, name
