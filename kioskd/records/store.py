"""The station's store (SQLite in the state directory): wipe receipts, samples for the panel, the office's
activity figures and the fleet link's outbox.

It holds no personal data by construction: session ids, stops, times, reasons, verdicts, durations and counts only.
Blocking sqlite3 calls are short; they run in a worker thread so the event loop never waits on the disk. It must
never stop the station: a store file it cannot read is set aside and a new one made, and a receipt it cannot
write (a full disk) is kept in memory and written once the disk takes it again."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import sqlite3
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any, TypeVar

from kioskd.hal import PowerState
from kioskd.session.receipt import WipeReceipt

T = TypeVar("T")
log = logging.getLogger(__name__)

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
    prints     INTEGER NOT NULL DEFAULT 0,
    up         REAL,  -- the store's uptime odometer when written (retention spares the last day of uptime)
    media_mounted  INTEGER NOT NULL DEFAULT 0,  -- the citizen's sticks mounted (counts only, never a name)
    media_exported INTEGER NOT NULL DEFAULT 0   -- files the agent copied onto them
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
-- issue 21: the same moments per uplink and operator (a store from before gains it at its next opening)
CREATE TABLE IF NOT EXISTS uplink_samples (
    at          REAL NOT NULL,
    stop        TEXT NOT NULL,
    uplink      TEXT NOT NULL,  -- the profile's name of the uplink (sfr, orange, mairie)
    operator    TEXT,           -- the network's name as the modem reads it, NULL for a wired link
    technology  TEXT NOT NULL,
    quality     INTEGER,
    internet    INTEGER         -- its own probe, through its own interface: 1, 0, or NULL when none ran
);
CREATE INDEX IF NOT EXISTS uplink_samples_stop ON uplink_samples (stop, at);
-- issue 21: the video-call checks ("Visio possible"), per stop and uplink
CREATE TABLE IF NOT EXISTS visio_checks (
    at         REAL NOT NULL,
    stop       TEXT,            -- NULL when no stop was named
    uplink     TEXT NOT NULL,
    operator   TEXT,
    possible   INTEGER NOT NULL,
    rtt        REAL,            -- seconds
    jitter     REAL,            -- seconds
    down_kbps  REAL,
    up_kbps    REAL
);
CREATE INDEX IF NOT EXISTS visio_checks_stop ON visio_checks (stop, at);
CREATE TABLE IF NOT EXISTS activity (
    stop      TEXT,               -- where the van stood; NULL until stops are named
    day       TEXT NOT NULL,      -- local date YYYY-MM-DD of the visit's start
    hour      INTEGER NOT NULL,   -- local start hour, 0-23
    opened_at REAL NOT NULL,
    seconds   REAL NOT NULL,      -- from the session's opening to the start of its wipe
    scans     INTEGER NOT NULL,
    prints    INTEGER NOT NULL,
    reason    TEXT NOT NULL,      -- how it ended: next, idle, power, end_of_day, travel, recovery
    up        REAL                -- the uptime odometer when written
);
CREATE INDEX IF NOT EXISTS activity_day ON activity (day);
-- AUTOINCREMENT: an id is never given twice, even after the rows before it are gone, so the office side can drop
-- the duplicates QoS 1 allows by id alone
CREATE TABLE IF NOT EXISTS outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL,      -- activity | receipt: the topic's last level
    body      TEXT NOT NULL,      -- JSON, without personal data like everything here
    queued_at REAL NOT NULL,
    up        REAL                -- the uptime odometer when written
);
-- one random name per store file: a reflashed van starts its ids again at 1 under a new name
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# the columns added after a store was first made: a store of an older kioskd gets them (NULL: written before)
ADDED_COLUMNS = (
    ("receipts", "up", "REAL"),
    ("activity", "up", "REAL"),
    ("outbox", "up", "REAL"),
    ("receipts", "media_mounted", "INTEGER NOT NULL DEFAULT 0"),
    ("receipts", "media_exported", "INTEGER NOT NULL DEFAULT 0"),
    # hand-overs to the citizen and confidential entries of the visit: how many, how long (issue 23)
    ("activity", "handovers", "INTEGER NOT NULL DEFAULT 0"),
    ("activity", "handover_seconds", "REAL NOT NULL DEFAULT 0"),
    ("activity", "confidential", "INTEGER NOT NULL DEFAULT 0"),
    ("activity", "confidential_seconds", "REAL NOT NULL DEFAULT 0"),
)
RECEIPT_COLUMNS = "session, opened_at, closed_at, reason, verified, handlers, problems, scans, downloads, prints"
RECEIPT_COUNTS = "media_mounted, media_exported"  # added columns: not required of an older store's table
ACTIVITY_COLUMNS = "stop, day, hour, opened_at, seconds, scans, prints, reason"
# what a visit is read and written with: the first store's columns and those added since (ADDED_COLUMNS)
VISIT_COLUMNS = ACTIVITY_COLUMNS + ", handovers, handover_seconds, confidential, confidential_seconds"
COLUMNS = {
    "receipts": RECEIPT_COLUMNS,
    "activity": ACTIVITY_COLUMNS,
    "outbox": "id, kind, body, queued_at",
    "power_samples": "at, shore, soc, voltage, power, time_to_go",
    "signal_samples": "at, stop, quality, rsrp, rsrq, sinr, technology, internet",
    "meta": "key, value",
}
UNREADABLE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # the file, not the disk
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
class UplinkSample:
    """One uplink's moment at a stop: which operator, did its own probe pass."""

    at: float
    stop: str
    uplink: str
    operator: str | None
    technology: str
    quality: int | None
    internet: bool | None


@dataclass(frozen=True)
class VisioSample:
    """One video-call check at a stop through one uplink."""

    at: float
    stop: str | None
    uplink: str
    operator: str | None
    possible: bool
    rtt: float | None
    jitter: float | None
    down_kbps: float | None
    up_kbps: float | None


@dataclass(frozen=True)
class Activity:
    """One visit as the office counts it: where, when, how long, how much was scanned and printed, how it ended."""

    stop: str | None
    day: str
    hour: int
    opened_at: float
    seconds: float
    scans: int
    prints: int
    reason: str
    handovers: int = 0  # "Main au citoyen" given in the visit, and for how many seconds in all
    handover_seconds: float = 0.0
    confidential: int = 0  # confidential entries, and their seconds
    confidential_seconds: float = 0.0


@dataclass(frozen=True)
class Queued:
    """A message of the fleet link's outbox."""

    id: int
    kind: str
    body: dict[str, Any]
    queued_at: float


Receipt = WipeReceipt  # the wipe's own receipt is what is stored (its visit goes to ``activity``, not kept here)


class Unreadable(sqlite3.DatabaseError):
    """The store file is not a store kioskd can read: garbage, truncated, another schema."""


@dataclass(frozen=True)
class SetAside:
    """A store file kioskd could not use, renamed beside the new one for the technician (``kioskctl doctor``)."""

    path: str  # where it is now
    what: str  # what was wrong with it, in a technician's words (sqlite's message)


class Store:
    """``uptime``: the monotonic seconds the store adds to its odometer (the injected clock's, so a simulated day of
    uptime passes in a test); the odometer counts kioskd's running time across restarts."""

    def __init__(self, path: Path, uptime: Callable[[], float] | None = None) -> None:
        self.path = path
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db: sqlite3.Connection | None = None
        self.queue_for_fleet = False  # set when the profile has a [fleet] link: receipts and visits go to the outbox
        self.on_queued: Callable[[], None] | None = None  # the fleet link's wake-up, called on the event loop
        self.set_aside: SetAside | None = None  # the unreadable store this run found and replaced
        self.unwritable = ""  # why the last write failed ("" when the store writes): the disk is full …
        self.on_health: Callable[[], None] | None = None  # called on the event loop when ``unwritable`` changes
        self.retention_paused = ""  # why retention deleted nothing at its last run (its clock), for the doctor
        self._unwritten: list[tuple[Receipt, Activity | None, float]] = []  # receipts waiting for the disk
        self._uptime = uptime or time.monotonic
        self._uptime0 = self._uptime()
        self._odometer0 = 0.0
        self.instance = secrets.token_hex(8)
        try:
            self._prepare()
        except Unreadable as exc:  # not a database, truncated, a schema it cannot read
            self._close()
            try:
                self.set_aside = _set_aside(path, str(exc))
                self._prepare()
            except (sqlite3.Error, OSError, Unreadable) as again:  # no new one either: the station runs without
                self._close()
                self.unwritable = _what(again)
        except (sqlite3.Error, OSError) as exc:  # cannot open it (a full or read-only disk): tried at each write
            self._close()
            self.unwritable = _what(exc)

    def _prepare(self) -> None:
        """Open the store, made or brought to today's schema; ``Unreadable`` when the file is not a store it can
        read (any other error is the disk's: full, read-only)."""
        try:
            self._prepare_schema()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) in UNREADABLE_CODES:
                raise Unreadable(_what(exc)) from exc
            raise

    def _prepare_schema(self) -> None:
        db = self._connect()
        with db:
            # a table of another schema (not a store of kioskd, or of a kioskd to come) is not read as one
            for table, columns in COLUMNS.items():
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if present and (missing := set(columns.split(", ")) - present):
                    raise Unreadable(f"table {table} lacks {', '.join(sorted(missing))}")
            db.executescript(SCHEMA)
            for table, column, kind in ADDED_COLUMNS:
                if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (self.instance,))
            self.instance = db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
            row = db.execute("SELECT value FROM meta WHERE key = 'odometer'").fetchone()
            self._odometer0 = float(row[0]) if row else 0.0
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise Unreadable("the integrity check failed")
        os.chmod(self.path, 0o600)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """``call`` on the store's own thread: one connection, one writer at a time. Threads of their own (one per
        call) fought over SQLite's write lock and lost samples to "database is locked" under load."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(call, *args))

    def _connect(self) -> sqlite3.Connection:
        """The store's connection, opened once (then used only by the store's thread)."""
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        # made 0600 before SQLite opens it: the umask must not choose who reads the store (nor its -wal, -shm, which
        # SQLite creates with the database file's mode)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        # secure_delete overwrites freed pages: nothing lingers in the file (there is nothing personal anyway)
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        return db

    # ------------------------------------------------------------------------------------------- uptime
    def odometer(self) -> float:
        """kioskd's running time in seconds, across restarts (saved by ``save_odometer``, at least daily)."""
        return self._odometer0 + max(0.0, self._uptime() - self._uptime0)

    def _meta(self, key: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    async def meta(self, key: str) -> str | None:
        return await self._run(self._meta, key)

    def _set_meta(self, values: dict[str, str | None]) -> None:
        with self._connect() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    async def set_meta(self, **values: str | None) -> None:
        """Keys of the store's own bookkeeping (the odometer, the retention's last trusted wall time)."""
        await self._run(self._set_meta, values)

    async def save_odometer(self) -> None:
        await self.set_meta(odometer=repr(self.odometer()))

    # ------------------------------------------------------------------------------------------- receipts
    def _add(self, r: Receipt, activity: Activity | None = None, up: float | None = None) -> None:
        # one transaction: the receipt, the visit and their outbox messages are all written, or none is
        with self._connect() as db:
            if activity is not None:
                db.execute(
                    f"INSERT INTO activity ({VISIT_COLUMNS}, up) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*astuple(activity), up),
                )
            if self.queue_for_fleet:
                if activity is not None:
                    self._enqueue(db, "activity", asdict(activity), r.closed_at, up)
                self._enqueue(db, "receipt", {k: v for k, v in asdict(r).items() if k != "visit"}, r.closed_at, up)
            db.execute(
                f"INSERT INTO receipts ({RECEIPT_COLUMNS}, up, {RECEIPT_COUNTS}) VALUES ({', '.join('?' * 13)})",
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
                    up,
                    r.media_mounted,
                    r.media_exported,
                ),
            )

    def _add_all(self) -> None:
        """The receipts waiting for the disk, oldest first; each leaves the list once written."""
        if self._db is None and self.unwritable:
            self._prepare()
        while self._unwritten:
            receipt, activity, up = self._unwritten[0]
            self._add(receipt, activity, up)
            self._unwritten.pop(0)

    async def add_receipt(self, receipt: Receipt, activity: Activity | None = None) -> bool:
        """A wipe's receipt, with the visit it ended when it is the first wipe of that session. False when the disk
        refused it: it is kept (``receipts`` lists it) and written first at the next write or ``flush``."""
        self._unwritten.append((receipt, activity, self.odometer()))
        if not await self.flush():
            return False
        self._queued()
        return True

    async def flush(self) -> bool:
        """Write the receipts kept while the disk refused them; True when none is left waiting."""
        return await self._write(self._add_all)

    @property
    def waiting(self) -> int:
        """Receipts not yet on disk."""
        return len(self._unwritten)

    async def _write(self, call: Callable[..., None], *args: Any) -> bool:
        """A write that a full or failing disk turns into ``unwritable`` (and a notice), never into an exception."""
        try:
            await self._run(call, *args)
        except (sqlite3.Error, OSError) as exc:
            self._health(_what(exc))
            return False
        self._health("")
        return True

    def _health(self, unwritable: str) -> None:
        if unwritable == self.unwritable:
            return
        if unwritable:
            log.error("the store cannot write (%s): receipts are kept in memory meanwhile", unwritable)
        else:
            log.info("the store writes again")
        self.unwritable = unwritable
        if self.on_health is not None:
            self.on_health()

    def _queued(self) -> None:
        if self.queue_for_fleet and self.on_queued is not None:
            self.on_queued()

    # ------------------------------------------------------------------------------------------- activity
    def _activity(self, month: str) -> list[Activity]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {VISIT_COLUMNS} FROM activity WHERE day LIKE ? ORDER BY opened_at", (f"{month}-%",)
            ).fetchall()
        return [Activity(*row) for row in rows]

    async def activity(self, month: str) -> list[Activity]:
        """The visits of ``month`` (YYYY-MM), oldest first."""
        return await self._run(self._activity, month)

    def _purge(self, before_day: str, before: float, spare: float, floor: float, aged: float) -> dict[str, int]:
        # a row dated before ``floor`` was written by a clock that was wrong: its date says nothing, so it ages by
        # the odometer instead (older than ``aged``); a row written at or after ``spare`` is never deleted
        keep = "(up IS NOT NULL AND up >= :spare)"
        undated = "(up IS NOT NULL AND up < :aged)"
        args = {"day": before_day, "before": before, "spare": spare, "floor": floor, "aged": aged}
        with self._connect() as db:
            return {
                "activity": db.execute(
                    "DELETE FROM activity WHERE ((opened_at >= :floor AND day < :day)"
                    f" OR (opened_at < :floor AND {undated})) AND NOT {keep}",
                    args,
                ).rowcount,
                "receipts": db.execute(
                    "DELETE FROM receipts WHERE ((closed_at >= :floor AND closed_at < :before)"
                    f" OR (closed_at < :floor AND {undated})) AND NOT {keep}",
                    args,
                ).rowcount,
                "outbox": db.execute(
                    "DELETE FROM outbox WHERE ((queued_at >= :floor AND queued_at < :before)"
                    f" OR (queued_at < :floor AND {undated})) AND NOT {keep}",
                    args,
                ).rowcount,
            }

    async def purge(
        self,
        before_day: str,
        before: float,
        spare: float = float("inf"),
        floor: float = float("-inf"),
        aged: float = float("-inf"),
    ) -> dict[str, int]:
        """Retention: visits of days before ``before_day``, receipts and unsent messages older than ``before``;
        never a row written at or after the odometer reading ``spare`` (the last day of uptime). Rows dated before
        ``floor`` (a clock that was wrong) go only once written before the odometer reading ``aged``."""
        return await self._run(self._purge, before_day, before, spare, floor, aged)

    # ------------------------------------------------------------------------------------------- outbox
    @staticmethod
    def _enqueue(db: sqlite3.Connection, kind: str, body: dict[str, Any], at: float, up: float | None) -> None:
        db.execute(
            "INSERT INTO outbox (kind, body, queued_at, up) VALUES (?, ?, ?, ?)", (kind, json.dumps(body), at, up)
        )

    def _queue(self, kind: str, body: dict[str, Any], at: float) -> None:
        with self._connect() as db:
            self._enqueue(db, kind, body, at, self.odometer())

    async def enqueue(self, kind: str, body: dict[str, Any], at: float) -> None:
        """A message for the fleet link, kept until the broker acknowledges it."""
        await self._run(self._queue, kind, body, at)
        self._queued()

    def _pending(self, after: int, limit: int) -> list[Queued]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, kind, body, queued_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            ).fetchall()
        return [Queued(row[0], row[1], json.loads(row[2]), row[3]) for row in rows]

    async def outbox(self, after: int = 0, limit: int = 100) -> list[Queued]:
        """Queued messages with an id above ``after``, in order."""
        return await self._run(self._pending, after, limit)

    def _acked(self, ids: list[int]) -> None:
        with self._connect() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    async def acknowledged(self, ids: list[int]) -> None:
        """The broker has these (PUBACK): they leave the outbox."""
        await self._run(self._acked, ids)

    def _outbox_size(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    async def outbox_size(self) -> int:
        return await self._run(self._outbox_size)

    def _add_sample(self, at: float, state: PowerState) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO power_samples VALUES (?, ?, ?, ?, ?, ?)",
                (at, None if state.shore is None else int(state.shore), state.soc, state.voltage, state.power,
                 state.time_to_go),
            )  # fmt: skip
            db.execute("DELETE FROM power_samples WHERE at < ?", (at - KEEP_SAMPLES,))

    async def add_power_sample(self, at: float, state: PowerState) -> None:
        await self._write(self._add_sample, at, state)

    def _samples(self, since: float) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM power_samples WHERE at >= ? ORDER BY at", (since,)).fetchall()
        keys = ("at", "shore", "soc", "voltage", "power", "time_to_go")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def power_samples(self, since: float) -> list[dict[str, Any]]:
        return await self._run(self._samples, since)

    def _add_signal(self, s: SignalSample) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO signal_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (s.at, s.stop, s.quality, s.rsrp, s.rsrq, s.sinr, s.technology,
                 None if s.internet is None else int(s.internet)),
            )  # fmt: skip
            db.execute("DELETE FROM signal_samples WHERE at < ?", (s.at - KEEP_SIGNAL,))

    async def add_signal_sample(self, sample: SignalSample) -> None:
        await self._write(self._add_signal, sample)

    def _add_uplink(self, s: UplinkSample) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO uplink_samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                (s.at, s.stop, s.uplink, s.operator, s.technology, s.quality,
                 None if s.internet is None else int(s.internet)),
            )  # fmt: skip
            db.execute("DELETE FROM uplink_samples WHERE at < ?", (s.at - KEEP_SIGNAL,))

    async def add_uplink_sample(self, sample: UplinkSample) -> None:
        await self._run(self._add_uplink, sample)

    def _add_visio(self, v: VisioSample) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO visio_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (v.at, v.stop, v.uplink, v.operator, int(v.possible), v.rtt, v.jitter, v.down_kbps, v.up_kbps),
            )
            db.execute("DELETE FROM visio_checks WHERE at < ?", (v.at - KEEP_SIGNAL,))

    async def add_visio_sample(self, sample: VisioSample) -> None:
        await self._run(self._add_visio, sample)

    @staticmethod
    def _per_uplink(db: sqlite3.Connection, since: float) -> dict[str, list[dict[str, Any]]]:
        """Per stop, each uplink and operator seen there: its samples, reachability and median signal."""
        rows = db.execute(
            "SELECT stop, uplink, operator, quality, internet FROM uplink_samples WHERE at >= ? ORDER BY stop, at",
            (since,),
        ).fetchall()
        groups: dict[tuple[str, str, str | None], list[tuple[Any, ...]]] = {}
        for row in rows:
            groups.setdefault((row[0], row[1], row[2]), []).append(row)
        stops: dict[str, list[dict[str, Any]]] = {}
        for (stop, uplink, operator), samples in groups.items():
            quality = [r[3] for r in samples if r[3] is not None]
            probed = [r[4] for r in samples if r[4] is not None]
            stops.setdefault(stop, []).append(
                {
                    "uplink": uplink,
                    "operator": operator,
                    "samples": len(samples),
                    "median_signal": statistics.median(quality) if quality else None,
                    "reachability": round(sum(probed) / len(probed), 3) if probed else None,
                }
            )
        checks = db.execute(
            "SELECT stop, uplink, operator, possible FROM visio_checks WHERE at >= ? AND stop IS NOT NULL", (since,)
        ).fetchall()
        visio: dict[tuple[str, str, str | None], list[int]] = {}
        for stop, uplink, operator, possible in checks:
            visio.setdefault((stop, uplink, operator), []).append(possible)
        for key, verdicts in visio.items():
            entry = next((u for u in stops.get(key[0], []) if (u["uplink"], u["operator"]) == key[1:]), None)
            if entry is None:
                entry = {"uplink": key[1], "operator": key[2], "samples": 0, "median_signal": None,
                         "reachability": None}  # fmt: skip
                stops.setdefault(key[0], []).append(entry)
            entry["visio"] = round(sum(verdicts) / len(verdicts), 3)
        for uplinks in stops.values():
            for entry in uplinks:
                entry.setdefault("visio", None)
            uplinks.sort(key=lambda u: (-(u["reachability"] or 0.0), u["uplink"], u["operator"] or ""))
        return stops

    def _atlas(self, since: float) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT stop, quality, rsrp, internet, at FROM signal_samples WHERE at >= ? ORDER BY stop, at", (since,)
            ).fetchall()
            per_uplink = self._per_uplink(db, since)
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
                    "uplinks": per_uplink.get(stop, []),
                    # the best uplink's share of video-call checks that held (None: never checked here)
                    "visio": max(
                        (u["visio"] for u in per_uplink.get(stop, []) if u["visio"] is not None), default=None
                    ),
                }
            )
        # Reachability first: a stop where the link holds beats one with a strong signal and a broken network.
        ranked.sort(
            key=lambda s: (-(s["reachability"] or 0.0), -(s["visio"] or 0.0), -(s["median_signal"] or 0.0), s["stop"])
        )
        return [{"rank": number, **stop} for number, stop in enumerate(ranked, 1)]

    async def atlas(self, since: float) -> list[dict[str, Any]]:
        """Stops ranked for planning the tour: by reachability, then by median signal, over samples since ``since``."""
        return await self._run(self._atlas, since)

    def _latest(self, limit: int) -> list[Receipt]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {RECEIPT_COLUMNS}, {RECEIPT_COUNTS} FROM receipts ORDER BY closed_at DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Receipt(row[0], row[1], row[2], row[3], bool(row[4]), json.loads(row[5]), json.loads(row[6]), *row[7:])
            for row in rows
        ]

    async def receipts(self, limit: int = 20) -> list[Receipt]:
        """The newest receipts, those still waiting for the disk first."""
        waiting = [receipt for receipt, _, _ in reversed(self._unwritten)][:limit]
        try:
            stored = await self._run(self._latest, limit - len(waiting)) if len(waiting) < limit else []
        except sqlite3.Error:
            stored = []
        return waiting + stored


def _what(exc: BaseException) -> str:
    """SQLite's or the system's words for what is wrong (they name no citizen file: the store holds none)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def _set_aside(path: Path, what: str) -> SetAside:
    """Rename the unusable store (and its -wal, -shm) with the time, 0600, so a new one can be made beside it."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.broken-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists() or source.is_symlink():
            moved = Path(f"{target}{suffix}")
            os.replace(source, moved)
            if not moved.is_symlink():
                os.chmod(moved, 0o600)
    log.error("the store %s could not be read (%s): set aside as %s, a new one is made", path, what, target.name)
    return SetAside(str(target), what)
