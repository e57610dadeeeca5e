"""Power backends: VE.Direct, NUT, UPower, sysfs, GPIO, and their combination; each reports through ``report``.

Real hardware lives in real time, so these backends pace their polls, timeouts and debouncing on the event loop's
clock, never on the injected (possibly accelerated) one. They import no policy and take no decision: ``kioskd.power``
does, from the ``PowerState`` and faults they report."""
