"""The retention rule: figures, receipts and unsent fleet messages older than ``retention_months`` are deleted at
start-up and then daily, on the injected clock. It deletes rows only; it never reads what a row says.

It does not trust a clock it cannot trust: below the clock floor (a dead RTC battery), or jumped ahead of the last
run by more than ``JUMP`` (a bad NTP answer), it deletes nothing until a week of uptime confirms the jump. It never
deletes what was written in the last day of uptime (the store's odometer), and a row dated below the floor (written
by a wrong clock) ages by the odometer, not by its date."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kioskd.clock import CLOCK_FLOOR

if TYPE_CHECKING:
    from kioskd.hal import Clock, TimerHandle
    from kioskd.profile import ActivityConfig
    from kioskd.records.store import Store

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 3600
MONTH_SECONDS = 30.4375 * DAY_SECONDS
SPARE = DAY_SECONDS  # seconds of uptime: what was written in the last day of uptime is never deleted
JUMP = 45 * DAY_SECONDS  # a wall clock this far ahead of the last run is not believed at once (a van's summer break)
CONFIRM = 7 * DAY_SECONDS  # seconds of uptime after which a jumped clock is believed


def cutoff(now: float, config: ActivityConfig) -> tuple[str, float]:
    """The first local day kept and its midnight (epoch): ``retention_months`` before today, day clamped."""
    zone = ZoneInfo(config.timezone)
    today = datetime.fromtimestamp(now, zone).date()
    months = today.year * 12 + today.month - 1 - config.retention_months
    year, month = divmod(months, 12)
    month += 1
    last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    first = date(year, month, min(today.day, last_day))
    return first.isoformat(), datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()


class Retention:
    """Deletes figures, receipts and unsent fleet messages older than the retention, at start-up and then daily
    (on the injected clock, so a simulated year passes in a test)."""

    def __init__(self, store: Store, config: ActivityConfig, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._timer: TimerHandle | None = None
        self._task: asyncio.Task[dict[str, int]] | None = None
        self.last: dict[str, int] = {}
        self.paused = ""  # why the last purge deleted nothing ("" when it ran): the clock cannot be trusted

    async def start(self) -> None:
        await self.purge()
        self._schedule()

    async def purge(self) -> dict[str, int]:
        now, odometer = self.clock.wall(), self.store.odometer()
        self.last = {}
        try:
            await self.store.save_odometer()
            self.paused = self.store.retention_paused = await self._distrust(now, odometer)
            if self.paused:
                log.warning("retention paused: %s", self.paused)
                return self.last
            day, midnight = cutoff(now, self.config)
            aged = odometer - self.config.retention_months * MONTH_SECONDS
            self.last = await self.store.purge(day, midnight, odometer - SPARE, CLOCK_FLOOR, aged)
        except (sqlite3.Error, OSError) as exc:  # a full or broken disk: the store says so, retention waits
            log.warning("retention skipped: %s", exc)
            return self.last
        if any(self.last.values()):
            log.info("retention (%d months): deleted %s", self.config.retention_months, self.last)
        return self.last

    async def _distrust(self, now: float, odometer: float) -> str:
        """Why the wall clock ``now`` cannot date what to delete ("" when it can); remembers the last trusted one."""
        if now < CLOCK_FLOOR:
            return f"the clock is before the floor ({datetime.fromtimestamp(now).year})"
        seen = float(await self.store.meta("wall_seen") or 0.0)
        if seen and now - seen > JUMP:
            jumped = await self.store.meta("jump_seen_at")
            if jumped is None:
                await self.store.set_meta(jump_seen_at=repr(odometer))
                jumped = repr(odometer)
            if odometer - float(jumped) < CONFIRM:
                return f"the clock jumped {(now - seen) / DAY_SECONDS:.0f} days ahead of the last run"
        await self.store.set_meta(wall_seen=repr(max(now, seen)), jump_seen_at=None)
        return ""

    def _schedule(self) -> None:
        self._timer = self.clock.call_later(DAY_SECONDS, self._daily)

    def _daily(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.purge())
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
