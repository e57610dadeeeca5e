"""The policies a station runs, in the order it hands them each event: the composition root (``kioskd.daemon``)
and the tests' station build the same list from a profile and the devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kioskd.hal import Clock
from kioskd.policies.base import Policy
from kioskd.policies.connectivity import ConnectivityPolicy
from kioskd.policies.displays import DisplaysPolicy
from kioskd.policies.handover import HandoverPolicy
from kioskd.policies.idle import IdlePolicy
from kioskd.policies.media import MediaPolicy
from kioskd.policies.power import PowerPolicy
from kioskd.policies.printing import PrintingPolicy
from kioskd.policies.scanning import ScanningPolicy
from kioskd.policies.update import UpdateConfig, UpdatePolicy
from kioskd.profile import Profile
from kioskd.records.recorder import Recorder

if TYPE_CHECKING:
    from kioskd.hal import Devices
    from kioskd.records.store import Store


def standard(
    profile: Profile, devices: Devices, clock: Clock, store: Store | None = None, update: UpdateConfig | None = None
) -> list[Policy]:
    """Every policy of the station; with ``update``, the A/B updates' lock; with a store, the recorder last (it
    records what the others decided)."""
    policies: list[Policy] = [
        PowerPolicy(profile.power_policy, profile.station.session_length, clock),
        ConnectivityPolicy(profile.connectivity, clock, devices.modem),
        IdlePolicy(profile.station, clock),
        DisplaysPolicy(devices.displays),
        HandoverPolicy(profile.handover, devices.inputs, devices.displays, clock),
        PrintingPolicy(devices.printer),
        ScanningPolicy(profile.scanning, devices.scanner, clock),
        MediaPolicy(devices.media),
    ]
    if update is not None:
        policies.append(UpdatePolicy(update, clock, store))
    if store is not None:
        policies.append(Recorder(store, profile.power_policy, profile.activity, clock))
    return policies
