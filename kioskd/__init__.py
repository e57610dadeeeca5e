"""kioskd: the on-board runtime of a mobile public-service office.

The package holds the daemon, its policies and the hardware contracts; it must never import a driver directly
(drivers are found through the ``kioskd.drivers`` entry points)."""

__version__ = "0.1.0"
