"""Scanning through the daemon on the simulated van: one PDF per job in the session, faults keep the pages
before them, and the scans leave with the citizen."""

from __future__ import annotations

import json
from pathlib import Path

from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import start_daemon


def test_scans_belong_to_the_session_and_a_jam_keeps_the_pages_before_it(tmp_path: Path) -> None:
    profile = tmp_path / "van.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("page_seconds = 4.0", "page_seconds = 0.05"))
    daemon = start_daemon(tmp_path, "--profile", str(profile))
    try:
        daemon.wait_for("READY=1")
        refused = daemon.ctl("scan", check=False)
        assert refused.returncode == 1 and "Aucun citoyen" in refused.stderr
        daemon.ctl("start")
        daemon.ctl("next")
        daemon.ctl("sim", "scanner", "load", "3")
        done = json.loads(daemon.ctl("--json", "scan", "--all").stdout)
        assert done["ok"] and done["pages"] == 3 and done["fault"] is None
        assert done["file"].startswith("scan-") and done["file"].endswith(".pdf")
        session = daemon.status()["session"]
        assert isinstance(session, dict) and session["scans"] == 1
        pdf = Path(session["workspace"]) / "scans" / done["file"]
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and data.count(b"/Type /Page") - data.count(b"/Type /Pages") == 3
        assert done["bytes"] == pdf.stat().st_size <= 2_000_000

        daemon.ctl("sim", "scanner", "load", "6")
        daemon.ctl("sim", "scanner", "jam", "4")
        jammed = daemon.ctl("scan", "--all", check=False)
        assert jammed.returncode == 1
        assert "3 page(s) scannée(s), bourrage à la page 4" in jammed.stdout, jammed.stdout
        assert (
            len(
                json.loads(daemon.ctl("--json", "scans").stdout or "[]")
                if False
                else daemon.ctl("scans").stdout.splitlines()
            )
            == 2
        )

        daemon.ctl("next")
        assert not pdf.exists()
        assert daemon.ctl("scans").stdout.strip() == ""
    finally:
        daemon.stop()
