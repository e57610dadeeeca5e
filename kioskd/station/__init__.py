"""The station: its state machine (``machine``), its one immutable snapshot (``snapshot``) and the LED's rules
(``led``). Nothing else lives here: the rules the station follows are its policies (``kioskd.policies``)."""

from kioskd.station.machine import TRANSITIONS, Station, check_transition, refusal_params

__all__ = ["TRANSITIONS", "Station", "check_transition", "refusal_params"]
