"""The retention rule: figures, receipts and unsent fleet messages older than ``retention_months`` are deleted at
start-up and then daily, on the injected clock. It deletes rows only; it never reads what a row says."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from kioskd.hal import Clock, TimerHandle
    from kioskd.profile import ActivityConfig
    from kioskd.records.store import Store

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 3600


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

    async def start(self) -> None:
        await self.purge()
        self._schedule()

    async def purge(self) -> dict[str, int]:
        day, midnight = cutoff(self.clock.wall(), self.config)
        self.last = await self.store.purge(day, midnight)
        if any(self.last.values()):
            log.info("retention (%d months): deleted %s", self.config.retention_months, self.last)
        return self.last

    def _schedule(self) -> None:
        self._timer = self.clock.call_later(DAY_SECONDS, self._daily)

    def _daily(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.purge())
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
