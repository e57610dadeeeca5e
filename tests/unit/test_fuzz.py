"""Fuzzing the two parsers that read what the outside world writes: vehicle profiles (a technician's TOML) and the
VE.Direct stream (a serial cable). Whatever they are fed, they answer with the project's own clean errors, never a
traceback. ``make soak`` runs 10,000 examples each (KIOSK_FUZZ_EXAMPLES); ``make test`` a few hundred."""

from __future__ import annotations

import copy
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.power.vedirect_protocol import TextParser, decode
from kioskd.cli.profile_check import check
from kioskd.clock import ManualClock
from kioskd.errors import ProfileError
from kioskd.hal.loader import build_devices
from kioskd.profile import SIM_PROFILE, load_profile, parse_profile

EXAMPLES = int(os.environ.get("KIOSK_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = tomllib.loads(SIM_PROFILE.read_text())

toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=12), inner, max_size=4),
    max_leaves=10,
)


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    return found


@st.composite
def mutated_profiles(draw: st.DrawFn) -> dict[str, Any]:
    """The sim profile with a few keys replaced by anything TOML can hold, deleted, or added."""
    data = copy.deepcopy(BASE)
    paths = _paths(data)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(toml_values)
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(toml_values)
    return data


@FUZZ
@given(mutated_profiles())
def test_any_profile_is_accepted_or_refused_with_a_profile_error_naming_the_key(data: dict[str, Any]) -> None:
    try:
        profile = parse_profile(data, "fuzz.toml")
    except ProfileError as exc:
        assert exc.where.startswith("fuzz.toml"), exc.where
        assert exc.what and exc.problems
        return
    with tempfile.TemporaryDirectory() as runtime:
        try:
            build_devices(profile, ManualClock(), lambda _: None, Path(runtime))
        except ProfileError as exc:
            assert exc.where.startswith("fuzz.toml"), exc.where


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_any_file_is_a_profile_or_a_listed_problem(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "van.toml"
        path.write_bytes(raw)
        try:
            load_profile(path)
        except ProfileError as exc:
            assert str(path) in str(exc)
        profile, problems = check(path)
        assert profile is not None or problems


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_any_serial_stream_gives_only_checked_blocks(chunks: list[bytes]) -> None:
    parser = TextParser()
    for chunk in chunks:
        for block in parser.feed(chunk):
            reading = decode(block)
            assert reading.soc is None or 0 <= reading.soc <= 100
