"""gpiozero's lgpio pin factory (Raspberry Pi 5) needs a writable LG_WD: kioskd gives it one in its runtime dir,
and the unit names the same directory among those systemd makes writable under ProtectSystem=strict."""

from __future__ import annotations

import configparser
from pathlib import Path

from kioskd.daemon import lgpio_workdir

ROOT = Path(__file__).resolve().parents[2]


def test_kioskd_sets_a_writable_lgpio_dir_in_its_runtime_dir_when_unset(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    path = lgpio_workdir(tmp_path, environ)
    assert environ["LG_WD"] == str(tmp_path / "lgpio") == str(path)
    (path / ".lgd-nfy0").write_text("")  # lgpio's notification pipe lands here, not in the read-only cwd
    assert oct(path.stat().st_mode & 0o777) == "0o700"


def test_a_working_dir_the_unit_or_a_technician_set_is_kept(tmp_path: Path) -> None:
    environ = {"LG_WD": str(tmp_path / "elsewhere")}
    assert lgpio_workdir(tmp_path, environ) == tmp_path / "elsewhere"
    assert environ["LG_WD"] == str(tmp_path / "elsewhere")


def test_the_units_lg_wd_is_a_runtime_directory_systemd_makes_writable() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "systemd" / "kioskd.service").read_text())
    service = unit["Service"]
    assert service["ProtectSystem"] == "strict"
    environment = dict(item.split("=", 1) for item in service["Environment"].split())
    runtime_dirs = service["RuntimeDirectory"].split()
    assert environment["LG_WD"] in {f"/run/{name}" for name in runtime_dirs}
    assert environment["LG_WD"] == "/run/kioskd/lgpio"  # the same as kioskd's own default in /run/kioskd
