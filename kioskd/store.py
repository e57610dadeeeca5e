"""The station's store (SQLite in the state directory): wipe receipts and samples for the panel.

It holds no personal data by construction: session ids, times, reasons, verdicts, durations and counts only.
Blocking sqlite3 calls are short; they run in a worker thread so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kioskd.hal import PowerState

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
CREATE TABLE IF NOT EXISTS power_samples (
    at       REAL NOT NULL,
    shore    INTEGER,
    soc      REAL,
    voltage  REAL,
    power    REAL,
    time_to_go REAL
);
CREATE INDEX IF NOT EXISTS power_samples_at ON power_samples (at);
CREATE TABLE IF NOT EXISTS signal_samples (
    at          REAL NOT NULL,
    stop        TEXT NOT NULL,  -- a stop of the tour (a place), never a person
    quality     INTEGER,        -- %
    rsrp        REAL,
    rsrq        REAL,
    sinr        REAL,
    technology  TEXT NOT NULL,
    internet    INTEGER         -- the reachability probe: 1, 0, or NULL when none ran
);
CREATE INDEX IF NOT EXISTS signal_samples_stop ON signal_samples (stop, at);
"""
KEEP_SAMPLES = 7 * 24 * 3600  # seconds: a week of power history is enough for the panel and the technician
KEEP_SIGNAL = 52 * 7 * 24 * 3600  # seconds: a year of signal samples, so the atlas can compare seasons


@dataclass(frozen=True)
class SignalSample:
    """What the atlas keeps of one moment at a stop: the link's figures, nothing about anyone."""

    at: float
    stop: str
    quality: int | None
    rsrp: float | None
    rsrq: float | None
    sinr: float | None
    technology: str
    internet: bool | None


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

    def _add_sample(self, at: float, state: PowerState) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO power_samples VALUES (?, ?, ?, ?, ?, ?)",
                (at, None if state.shore is None else int(state.shore), state.soc, state.voltage, state.power,
                 state.time_to_go),
            )  # fmt: skip
            db.execute("DELETE FROM power_samples WHERE at < ?", (at - KEEP_SAMPLES,))

    async def add_power_sample(self, at: float, state: PowerState) -> None:
        await asyncio.to_thread(self._add_sample, at, state)

    def _samples(self, since: float) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM power_samples WHERE at >= ? ORDER BY at", (since,)).fetchall()
        keys = ("at", "shore", "soc", "voltage", "power", "time_to_go")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def power_samples(self, since: float) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._samples, since)

    def _add_signal(self, s: SignalSample) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO signal_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (s.at, s.stop, s.quality, s.rsrp, s.rsrq, s.sinr, s.technology,
                 None if s.internet is None else int(s.internet)),
            )  # fmt: skip
            db.execute("DELETE FROM signal_samples WHERE at < ?", (s.at - KEEP_SIGNAL,))

    async def add_signal_sample(self, sample: SignalSample) -> None:
        await asyncio.to_thread(self._add_signal, sample)

    def _atlas(self, since: float) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT stop, quality, rsrp, internet, at FROM signal_samples WHERE at >= ? ORDER BY stop, at", (since,)
            ).fetchall()
        stops: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            stops.setdefault(row[0], []).append(row)
        ranked = []
        for stop, samples in stops.items():
            quality = [r[1] for r in samples if r[1] is not None]
            rsrp = [r[2] for r in samples if r[2] is not None]
            probed = [r[3] for r in samples if r[3] is not None]
            ranked.append(
                {
                    "stop": stop,
                    "samples": len(samples),
                    "median_signal": statistics.median(quality) if quality else None,
                    "median_rsrp": statistics.median(rsrp) if rsrp else None,
                    "reachability": round(sum(probed) / len(probed), 3) if probed else None,
                    "last_seen": samples[-1][4],
                }
            )
        # Reachability first: a stop where the link holds beats one with a strong signal and a broken network.
        ranked.sort(key=lambda s: (-(s["reachability"] or 0.0), -(s["median_signal"] or 0.0), s["stop"]))
        return [{"rank": number, **stop} for number, stop in enumerate(ranked, 1)]

    async def atlas(self, since: float) -> list[dict[str, Any]]:
        """Stops ranked for planning the tour: by reachability, then by median signal, over samples since ``since``."""
        return await asyncio.to_thread(self._atlas, since)

    def _latest(self, limit: int) -> list[Receipt]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM receipts ORDER BY closed_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [
            Receipt(row[0], row[1], row[2], row[3], bool(row[4]), json.loads(row[5]), json.loads(row[6]), *row[7:])
            for row in rows
        ]

    async def receipts(self, limit: int = 20) -> list[Receipt]:
        return await asyncio.to_thread(self._latest, limit)
