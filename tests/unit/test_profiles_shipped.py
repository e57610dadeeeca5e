"""Every profile shipped in profiles/ validates and builds its backends (without opening any device)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.hal.loader import build_devices
from kioskd.profile import load_profile

PROFILES = sorted((Path(__file__).resolve().parents[2] / "profiles").glob("*.toml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_shipped_profile_builds(path: Path, tmp_path: Path) -> None:
    profile = load_profile(path)
    devices = build_devices(profile, ManualClock(), lambda _: None, tmp_path)
    assert {kind for kind, _ in devices.all()} == set(profile.devices) | {"host", "media"}


def test_there_is_a_real_vehicle_example() -> None:
    assert any(p.name != "sim.toml" for p in PROFILES)
