"""Removable-media backends: the citizen's USB sticks (``fuse``: udev + FUSE drivers in a sandbox)."""
