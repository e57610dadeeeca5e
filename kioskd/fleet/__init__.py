"""The office link: the link policy (``link``: health, the outbox, read-only commands) and its MQTT transport
(``mqtt``, paho imported only when a profile has a [fleet] section). It sees the station through a small protocol
(``link.StationView``), never the machine itself."""

from kioskd.fleet.link import FleetLink, StationView, health

__all__ = ["FleetLink", "StationView", "health"]
