"""Handing the controls to the citizen through the real daemon on the simulated van: ``kioskctl handover`` and
``kioskctl confidential``, the citizen's keys delivered or ignored (``kioskctl sim type``), the button's short press
ending a confidential entry, the wipe's receipt with the counts and nothing typed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_process import Daemon, start_daemon

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path)
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()


def enabled(status: Any) -> dict[str, bool]:
    return {d["name"]: d["enabled"] for d in status["inputs"]["devices"]}


def test_handover_and_confidential_entry_from_the_command_line(daemon: Daemon) -> None:
    refused = daemon.ctl("handover", "on", check=False)
    assert refused.returncode == 1 and "Aucun citoyen" in refused.stderr
    daemon.ctl("start")
    daemon.ctl("next")
    status = daemon.status()
    assert not enabled(status)["citizen touch"] and status["handover"]["handover"] is False  # type: ignore[index]
    assert "ignored" in daemon.ctl("sim", "type", "citizen").stdout

    assert daemon.ctl("handover", "on").stdout.strip() == "Le citoyen a la main"
    assert enabled(daemon.status())["citizen keyboard"]
    assert "delivered" in daemon.ctl("sim", "type", "citizen").stdout

    out = daemon.ctl("--lang", "en", "confidential", "on").stdout.strip()
    assert out.startswith("Confidential entry: your screen is hidden")
    status = daemon.status()
    assert status["displays"]["agent_curtain"] is True and status["displays"]["layout"] == "confidential"  # type: ignore[index]
    assert not enabled(status)["agent keyboard"] and "ignored" in daemon.ctl("sim", "type", "agent").stdout
    session = status["session"]["id"]  # type: ignore[index]

    daemon.ctl("sim", "press")  # the button ends the confidential entry, not the citizen's session
    status = daemon.status()
    assert status["session"]["id"] == session and status["handover"]["confidential"] is False  # type: ignore[index]
    assert enabled(status)["agent keyboard"] and enabled(status)["citizen keyboard"], "still handed over"

    assert daemon.ctl("privacy", "on").stdout.strip() == "masqué"
    status = daemon.status()
    assert status["handover"]["handover"] is False and not enabled(status)["citizen keyboard"]  # type: ignore[index]
    daemon.ctl("privacy", "off")

    daemon.ctl("next")
    receipts = json.loads(daemon.ctl("--json", "receipts").stdout)
    mine = next(r for r in receipts if r["session"] == session)
    inputs = next(h for h in mine["handlers"] if h["name"] == "inputs")
    assert mine["verified"] and inputs["ok"] and inputs["note"].startswith("1 handover(s)"), inputs
    assert "1 confidential" in inputs["note"]
