"""Host backends: powering the machine off and holding off a shutdown while a wipe runs (logind on a van)."""
