"""The store keeps the wipe's receipt as the wipe made it (one dataclass, ``WipeReceipt``): its counts of the
citizen's sticks come back from disk, a store made before those counts gets their columns, and the fleet's copy
carries no visit (the visit goes to the activity table and its own message)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from kioskd.records.store import Store
from kioskd.session.receipt import Visit, WipeReceipt

OLD_RECEIPTS = """CREATE TABLE receipts (session TEXT NOT NULL, opened_at REAL, closed_at REAL NOT NULL,
 reason TEXT NOT NULL, verified INTEGER NOT NULL, handlers TEXT NOT NULL, problems TEXT NOT NULL,
 scans INTEGER NOT NULL DEFAULT 0, downloads INTEGER NOT NULL DEFAULT 0, prints INTEGER NOT NULL DEFAULT 0, up REAL)"""


def receipt(**changes: object) -> WipeReceipt:
    base = WipeReceipt("s1", 1.0e9, 1.0e9 + 600, "next", True, [{"name": "media", "ok": True}], [], 3, 1, 2)
    return WipeReceipt(**{**base.__dict__, **changes})  # type: ignore[arg-type]


async def test_the_sticks_counts_come_back_from_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "kioskd.sqlite")
    assert await store.add_receipt(receipt(media_mounted=1, media_exported=6))
    again = Store(tmp_path / "kioskd.sqlite")  # a restarted kioskd reads the file
    (back,) = await again.receipts(5)
    assert (back.media_mounted, back.media_exported, back.scans, back.prints) == (1, 6, 3, 2)
    assert back.visit is None


async def test_a_store_older_than_the_counts_gets_their_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "kioskd.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(OLD_RECEIPTS)
        db.execute("INSERT INTO receipts VALUES ('old', 1, 2, 'next', 1, '[]', '[]', 4, 0, 0, NULL)")
    store = Store(path)
    assert await store.add_receipt(receipt(session="new", closed_at=3.0, media_mounted=2))
    new, old = await store.receipts(5)
    assert (new.session, new.media_mounted) == ("new", 2)
    assert (old.session, old.scans, old.media_mounted, old.media_exported) == ("old", 4, 0, 0)
    assert store.set_aside is None, "an older store is migrated, not set aside"


async def test_the_fleets_copy_of_a_receipt_has_no_visit(tmp_path: Path) -> None:
    store = Store(tmp_path / "kioskd.sqlite")
    store.queue_for_fleet = True
    visit = Visit("Domme", 1.0e9, 600.0, 3, 2, "next")
    await store.add_receipt(receipt(visit=visit))
    with sqlite3.connect(tmp_path / "kioskd.sqlite") as db:
        bodies = [json.loads(row[0]) for row in db.execute("SELECT body FROM outbox WHERE kind = 'receipt'")]
    assert len(bodies) == 1 and "visit" not in bodies[0] and bodies[0]["media_exported"] == 0
