"""`kioskctl profile check|show|schema`: every problem with its key and line, the effective profile, the reference."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from kioskd.cli.profile_check import check, effective, key_lines, schema_markdown, to_toml
from kioskd.profile import SIM_PROFILE, load_profile, parse_profile

ROOT = Path(__file__).resolve().parents[2]
BROKEN = """\
[vehicle]
id = "bad van"
name = "x"

[station]
hold_time = "long"
holdtime = 2

[scanning]
destinations = [
    { name = "ants", max_bytes = 10 },
    { name = "Impots", max_bytes = 4_000_000 },
]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "van.toml"
    path.write_text(text)
    return path


def test_every_problem_of_the_station_sections_is_listed_with_its_line(tmp_path: Path) -> None:
    _, problems = check(_write(tmp_path, BROKEN))
    found = {(p.key, p.line) for p in problems}
    assert ("vehicle.id", 2) in found
    assert ("station.hold_time", 6) in found
    assert ("station.holdtime", 7) in found
    assert ("scanning.destinations.0.max_bytes", 11) in found
    assert ("scanning.destinations.1.name", 12) in found
    assert ("devices", None) in found, "the missing [devices] tables are reported too"
    assert len(problems) == 6


def test_backend_options_are_checked_with_their_lines(tmp_path: Path) -> None:
    text = SIM_PROFILE.read_text()
    text = text.replace("soc = 80", "soc = 300").replace("paper = 250", 'paper = 250\npaper_size = "A4"')
    text = text.replace('[devices.modem]\ndriver = "sim"', '[devices.modem]\ndriver = "nosuch"')
    path = _write(tmp_path, text)
    lines = text.splitlines()
    profile, problems = check(path)
    assert profile is not None
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"devices.power.soc", "devices.printer.paper_size", "devices.modem.driver"}
    for problem in problems:
        assert problem.line is not None
        assert problem.key.rsplit(".", 1)[1] in lines[problem.line - 1], problem
    assert "installed: modemmanager, networkmanager, sim" in by_key["devices.modem.driver"].what


def test_a_toml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    _, problems = check(_write(tmp_path, '[vehicle]\nid = "a"\nname = \n'))
    assert len(problems) == 1 and problems[0].line == 3 and "not valid TOML" in problems[0].what


def test_key_lines_follow_tables_arrays_of_tables_and_inline_tables() -> None:
    lines = key_lines(
        '[a]\nx = 1 # c\n[[a.list]]\nn = "one"\n[[a.list]]\nn = "two"\n[b]\nt = { u = 1, v = "#" }\n'
        "arr = [\n  { w = 1 },\n  { w = 2 },\n]\n"
    )
    assert lines["a.x"] == 2
    assert lines["a.list.0.n"] == 4 and lines["a.list.1.n"] == 6
    assert lines["b.t.u"] == 8 and lines["b.t.v"] == 8
    assert lines["b.arr.0.w"] == 10 and lines["b.arr.1.w"] == 11


def test_the_effective_profile_has_the_defaults_and_loads_back_as_the_same_profile() -> None:
    profile = load_profile(SIM_PROFILE)
    data = effective(profile)
    assert data["power_policy"]["discharge_window"] == 600  # a default the sim profile does not write
    assert data["devices"]["printer"]["toner"] == 80  # a backend option default
    again = parse_profile(tomllib.loads(to_toml(data)), "<shown>")
    assert again.model_dump(exclude={"source", "devices", "host"}) == profile.model_dump(
        exclude={"source", "devices", "host"}
    )
    assert again.devices["printer"].options()["paper"] == 250


def test_the_committed_profile_reference_is_generated_from_the_code() -> None:
    committed = (ROOT / "docs" / "profile.md").read_text()
    assert committed == schema_markdown(), "docs/profile.md is stale: run `make docs`"
    for key in ("`hold_time`", "`max_bytes`", 'driver = "vedirect"', "`ups`"):
        assert key in committed


def test_kioskctl_profile_check_exits_non_zero_and_prints_file_line_key(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    result = subprocess.run(
        [sys.executable, "-m", "kioskd.cli", "profile", "check", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"{path}:6: station.hold_time:" in result.stdout
    good = subprocess.run(
        [sys.executable, "-m", "kioskd.cli", "profile", "check", str(SIM_PROFILE)], capture_output=True, text=True
    )
    assert good.returncode == 0 and "profil valide" in good.stdout
