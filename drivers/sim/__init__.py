"""The simulated van: eight backends that are views on it (``drivers/sim/<kind>.py``), each holding its own part's
physics and fault verbs (``verb_<name>`` methods), and the van (``van.SimVan``) that holds them together.

Like gpiozero's MockFactory, the simulation models the physics (a battery that drains with the load and charges
on shore, a paper tray that empties) and records every change with its time (``van.SimHistory``). It imports only
``kioskd.hal``."""
