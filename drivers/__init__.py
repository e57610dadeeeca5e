"""Hardware backends of kioskd, one module per device kind and backend (``drivers/<kind>/<backend>.py``).

Drivers implement the contracts of ``kioskd.hal`` and never import a policy."""
