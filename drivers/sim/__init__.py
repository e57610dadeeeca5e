"""The simulated van: one model (``van.SimVan``) and eight backends that are views on it.

Like gpiozero's MockFactory, the simulation models the physics (a battery that drains with the load and charges
on shore, a paper tray that empties) and records every change with its time. It imports only ``kioskd.hal``."""
