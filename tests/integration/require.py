"""What integration fixtures need from the machine; a missing piece fails the test with the install command."""

from __future__ import annotations

import shutil

import pytest


def binary(name: str, package: str) -> str:
    """The path of ``name``; fails (never skips) with the Debian package that provides it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/lib/cups/daemon")
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install {package}` (or `make test`, which does)")
    return path
