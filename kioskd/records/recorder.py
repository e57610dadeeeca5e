"""The recorder: the only writer of what happened into the store. Power samples (at most one per
``sample_period``) and the atlas's signal samples come from events; a wipe's receipt and the visit it ended come
from the wipe's outcome (awaited, so a receipt is on disk before the command that wiped returns). It turns a visit
into the office's local day and hour. It reads no device; it shows the agent only what the store says of itself
(a store set aside, a disk that refuses receipts, kept in memory and written again every ``RETRY`` seconds)."""

from __future__ import annotations

import dataclasses

from kioskd.hal import Clock, Event, PowerChanged, TimerHandle
from kioskd.policies.base import Policy
from kioskd.policies.connectivity import SignalSampled, UplinkSampled, VisioChecked
from kioskd.profile import ActivityConfig, PowerPolicyConfig
from kioskd.records.stats import local_slot
from kioskd.records.store import Activity, SignalSample, Store, UplinkSample, VisioSample
from kioskd.session import WipeOutcome

RETRY = 60.0  # seconds between two tries to write the receipts a full disk refused


class Recorder(Policy):
    events = (PowerChanged, SignalSampled, UplinkSampled, VisioChecked)

    def __init__(self, store: Store, power: PowerPolicyConfig, activity: ActivityConfig, clock: Clock) -> None:
        self.store = store
        self.power = power
        self.activity = activity
        self.clock = clock
        self._last_sample = float("-inf")
        self._retry: TimerHandle | None = None

    def start(self) -> None:
        self.store.on_health = self._health
        self._health()
        if (aside := self.store.set_aside) is not None:
            self.outlet.notice("store.set_aside", "store.set_aside", "warning", path=aside.path, problem=aside.what)

    def close(self) -> None:
        self.store.on_health = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _health(self) -> None:
        """The store's word on its writes, as a notice: receipts waiting for a disk that refuses them."""
        if self.store.unwritable:
            self.outlet.notice(
                "store", "store.unwritable", "error", problem=self.store.unwritable, waiting=self.store.waiting
            )
            if self._retry is None and self.store.waiting:
                self._retry = self.clock.call_later(RETRY, self._again)
        else:
            self.outlet.clear_notice("store")

    def _again(self) -> None:
        self._retry = None
        self.outlet.spawn(self._flush())

    async def _flush(self) -> None:
        if not await self.store.flush() and self._retry is None:
            self._retry = self.clock.call_later(RETRY, self._again)

    def on_event(self, event: Event) -> None:
        if isinstance(event, PowerChanged):
            now = self.clock.wall()
            if not event.state.available or now - self._last_sample < self.power.sample_period:
                return  # the store is on disk: the panel's history needs no more than one sample per period
            self._last_sample = now
            self.outlet.spawn(self.store.add_power_sample(now, event.state))
        elif isinstance(event, SignalSampled):
            sample = SignalSample(
                event.at, event.stop, event.quality, event.rsrp, event.rsrq, event.sinr, event.technology,
                event.internet,
            )  # fmt: skip
            self.outlet.spawn(self.store.add_signal_sample(sample))
        elif isinstance(event, UplinkSampled):
            per_uplink = UplinkSample(
                event.at, event.stop, event.uplink, event.operator, event.technology, event.quality, event.internet
            )
            self.outlet.spawn(self.store.add_uplink_sample(per_uplink))
        elif isinstance(event, VisioChecked):
            c = event.check
            visio = VisioSample(
                c.at, event.stop, c.uplink, event.operator, c.possible, c.rtt, c.jitter, c.down_kbps, c.up_kbps
            )
            self.outlet.spawn(self.store.add_visio_sample(visio))

    async def wiped(self, outcome: WipeOutcome) -> None:
        """The receipt on disk, or kept by the store until the disk takes it (never an exception: a receipt that
        cannot be written must not hold the station in wiping once the citizen's data is gone)."""
        receipt = outcome.receipt
        if receipt is None:
            return
        activity = None
        if (visit := receipt.visit) is not None:
            day, hour = local_slot(visit.opened_at, self.activity.timezone)
            activity = Activity(
                stop=visit.stop,
                day=day,
                hour=hour,
                opened_at=visit.opened_at,
                seconds=visit.seconds,
                scans=visit.scans,
                prints=visit.prints,
                reason=visit.reason,
                handovers=visit.handovers,
                handover_seconds=visit.handover_seconds,
                confidential=visit.confidential,
                confidential_seconds=visit.confidential_seconds,
            )
        if not await self.store.add_receipt(dataclasses.replace(receipt, visit=None), activity):
            self._health()  # the notice counts it among the waiting ones
