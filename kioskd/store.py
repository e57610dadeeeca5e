"""The station's store (SQLite in the state directory): wipe receipts and samples for the panel.

It holds no personal data by construction: session ids, times, reasons, verdicts, durations and counts only.
Blocking sqlite3 calls are short; they run in a worker thread so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    session    TEXT NOT NULL,
    opened_at  REAL,
    closed_at  REAL NOT NULL,
    reason     TEXT NOT NULL,
    verified   INTEGER NOT NULL,
    handlers   TEXT NOT NULL,  -- JSON: [{"name", "ok", "seconds", "reason"}]
    problems   TEXT NOT NULL,  -- JSON: verification findings, counts only
    scans      INTEGER NOT NULL DEFAULT 0,
    downloads  INTEGER NOT NULL DEFAULT 0,
    prints     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS receipts_closed ON receipts (closed_at);
"""


@dataclass(frozen=True)
class Receipt:
    session: str
    opened_at: float | None
    closed_at: float
    reason: str
    verified: bool
    handlers: list[dict[str, Any]]
    problems: list[str]
    scans: int = 0
    downloads: int = 0
    prints: int = 0


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        # secure_delete overwrites freed pages: nothing lingers in the file (there is nothing personal anyway)
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        return db

    def _add(self, r: Receipt) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.session,
                    r.opened_at,
                    r.closed_at,
                    r.reason,
                    int(r.verified),
                    json.dumps(r.handlers),
                    json.dumps(r.problems),
                    r.scans,
                    r.downloads,
                    r.prints,
                ),
            )

    async def add_receipt(self, receipt: Receipt) -> None:
        await asyncio.to_thread(self._add, receipt)

    def _latest(self, limit: int) -> list[Receipt]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM receipts ORDER BY closed_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [
            Receipt(row[0], row[1], row[2], row[3], bool(row[4]), json.loads(row[5]), json.loads(row[6]), *row[7:])
            for row in rows
        ]

    async def receipts(self, limit: int = 20) -> list[Receipt]:
        return await asyncio.to_thread(self._latest, limit)
