"""The recorder: the only writer of what happened into the store. Power samples (at most one per
``sample_period``) and the atlas's signal samples come from events; a wipe's receipt and the visit it ended come
from the wipe's outcome (awaited, so a receipt is on disk before the command that wiped returns). It turns a visit
into the office's local day and hour. It reads no device and shows nothing to the agent."""

from __future__ import annotations

from kioskd.hal import Clock, Event, PowerChanged
from kioskd.policies.base import Policy
from kioskd.policies.connectivity import SignalSampled, UplinkSampled, VisioChecked
from kioskd.profile import ActivityConfig, PowerPolicyConfig
from kioskd.records.stats import local_slot
from kioskd.records.store import Activity, Receipt, SignalSample, Store, UplinkSample, VisioSample
from kioskd.session import WipeOutcome


class Recorder(Policy):
    events = (PowerChanged, SignalSampled, UplinkSampled, VisioChecked)

    def __init__(self, store: Store, power: PowerPolicyConfig, activity: ActivityConfig, clock: Clock) -> None:
        self.store = store
        self.power = power
        self.activity = activity
        self.clock = clock
        self._last_sample = float("-inf")

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
            )
        await self.store.add_receipt(
            Receipt(
                session=receipt.session,
                opened_at=receipt.opened_at,
                closed_at=receipt.closed_at,
                reason=receipt.reason,
                verified=receipt.verified,
                handlers=receipt.handlers,
                problems=receipt.problems,
                scans=receipt.scans,
                downloads=receipt.downloads,
                prints=receipt.prints,
            ),
            activity,
        )
