"""A backend's own doctor checks live with it: the CUPS backend says whether its server keeps job history or job
files, and ``kioskctl doctor`` shows that line without knowing CUPS."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from drivers.printer.cups import CupsPrinter
from kioskd import doctor
from kioskd.clock import ManualClock
from kioskd.hal import Diagnosable, DriverContext
from kioskd.hal.loader import build_devices
from kioskd.profile import SIM_PROFILE, load_profile


def _cups(tmp_path: Path, conf: str | None) -> CupsPrinter:
    ctx = DriverContext(
        kind="printer",
        driver="cups",
        options={"queue": "kiosk"},
        clock=ManualClock(),
        emit=lambda _: None,
        runtime_dir=tmp_path,
    )
    printer = CupsPrinter(ctx)  # builds without I/O: nothing is started
    printer.cupsd_conf = tmp_path / "cupsd.conf"
    if conf is not None:
        printer.cupsd_conf.write_text(conf)
    return printer


@pytest.mark.parametrize(
    ("conf", "verdict", "kept"),
    [
        ("PreserveJobHistory No\nPreserveJobFiles No\n", "ok", ""),
        ("  preservejobhistory no\n# PreserveJobFiles No\n", "fail", "preservejobfiles"),
        ("LogLevel warn\n", "fail", "preservejobhistory, preservejobfiles"),  # CUPS's defaults keep both
        (None, "fail", ""),  # no file: cannot tell, so it is not fine
    ],
    ids=["both-off", "files-kept", "stock", "unreadable"],
)
async def test_the_cups_backend_fails_its_privacy_check_when_the_server_keeps_history_or_files(
    tmp_path: Path, conf: str | None, verdict: str, kept: str
) -> None:
    printer = _cups(tmp_path, conf)
    assert isinstance(printer, Diagnosable)
    (finding,) = await printer.diagnose()
    assert finding.name == "cups" and finding.verdict == verdict
    assert (finding.key == "doctor.cups.privacy") is (verdict == "fail")
    if kept:
        assert finding.detail.endswith(f"keeps {kept}")


async def test_the_doctor_shows_a_backends_own_findings_and_knows_no_backend_by_name(tmp_path: Path) -> None:
    runtime = Path(tempfile.mkdtemp(dir=tmp_path))
    devices = build_devices(load_profile(SIM_PROFILE), ManualClock(), lambda _: None, runtime)
    inputs = doctor.DoctorInputs(
        devices=devices,
        in_session=True,  # no active probe
        runtime_dir=runtime,
        state_dir=tmp_path,
        wall=lambda: 1_800_000_000.0,
        wait_for_press=lambda _: asyncio.sleep(0, False),
        probe_internet=lambda: asyncio.sleep(0, "ok"),
    )
    names = [check.name for check in await doctor.run(inputs)]
    assert "cups" not in names, "the simulated printer has no CUPS server to check"
    devices.printer = _cups(tmp_path, "PreserveJobHistory Yes\nPreserveJobFiles No\n")
    checks = {check.name: check for check in await doctor.run(inputs)}
    assert checks["cups"].verdict == "fail" and "preservejobhistory" in checks["cups"].detail
    assert checks["cups"].to_json()["action"]["fr"], "the catalogue says what to do"
