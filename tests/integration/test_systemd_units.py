"""The systemd files technicians deploy are valid: systemd-analyze, systemd-tmpfiles and systemd-sysusers read
them in a scratch root without a complaint (unknown keys are only warnings: stderr must stay empty)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.integration.require import binary

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "opt/kioskd/bin").mkdir(parents=True)
    stub = root / "opt/kioskd/bin/kioskd"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    shutil.copy(SYSTEMD / "kioskd.service", root / "etc/systemd/system/")
    return root


def test_service_unit_verifies_cleanly(tmp_path: Path) -> None:
    analyze = binary("systemd-analyze", "systemd")
    root = _root(tmp_path)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", "--recursive-errors=no", "/etc/systemd/system/kioskd.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = (SYSTEMD / "kioskd.service").read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "RestartPreventExitStatus=78" in text


def test_tmpfiles_and_sysusers_parse(tmp_path: Path) -> None:
    root = _root(tmp_path)
    sysusers = subprocess.run(
        [binary("systemd-sysusers", "systemd"), f"--root={root}", str(SYSTEMD / "kioskd.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sysusers.returncode == 0, sysusers.stderr
    assert "kiosk:" in (root / "etc/passwd").read_text() and "kiosk-agent:" in (root / "etc/group").read_text()
    tmpfiles = subprocess.run(
        [binary("systemd-tmpfiles", "systemd"), f"--root={root}", "--create", str(SYSTEMD / "kioskd.tmpfiles")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    assert oct((root / "run/kioskd/sessions").stat().st_mode & 0o777) == "0o700"
