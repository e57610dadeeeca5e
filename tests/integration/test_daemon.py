"""kioskd as systemd runs it: READY=1, STATUS=, WATCHDOG=1, STOPPING=1; the API on its socket; the event stream."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.daemon_process import ROOT, Daemon, start_daemon

TOP_LEVEL = ("station", "power", "modem", "displays", "scanner", "printer", "button", "audio", "camera", "session")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, env={"WATCHDOG_USEC": "400000"})
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()


def test_ready_then_status_answers_with_every_part_of_the_station(daemon: Daemon) -> None:
    status = daemon.status()
    for key in TOP_LEVEL:
        assert key in status
    assert status["station"]["state"] == "off"  # type: ignore[index]
    mode = stat.S_IMODE(os.stat(daemon.socket_path).st_mode)
    assert mode == 0o660
    human = daemon.ctl("status").stdout
    assert "Énergie" in human and "Station éteinte" in human


def test_commands_and_sim_verbs_show_in_status_at_once(daemon: Daemon) -> None:
    daemon.ctl("start")
    daemon.ctl("next")
    daemon.ctl("sim", "soc", "25")
    daemon.ctl("sim", "signal", "10")
    status = daemon.status()
    assert status["station"]["state"] == "in_session"  # type: ignore[index]
    assert status["power"]["soc"] == 25  # type: ignore[index]
    assert status["modem"]["signal"] == 10  # type: ignore[index]
    session = status["session"]
    assert isinstance(session, dict) and Path(session["workspace"]).is_dir()
    refused = daemon.ctl("start", check=False)
    assert refused.returncode == 1 and "déjà démarrée" in refused.stderr
    bad = daemon.ctl("sim", "soc", "lots", check=False)
    assert bad.returncode == 1 and "soc" in bad.stderr
    assert daemon.proc.poll() is None, "bad input must not stop the daemon"


def test_privacy_curtain_from_the_command_line(daemon: Daemon) -> None:
    refused = daemon.ctl("privacy", "on", check=False)
    assert refused.returncode == 1 and "Écrans éteints" in refused.stderr
    daemon.ctl("start")
    assert daemon.ctl("privacy", "toggle").stdout.strip() == "masqué"
    assert daemon.status()["displays"]["curtain"] is True  # type: ignore[index]
    assert daemon.ctl("--lang", "en", "privacy", "off").stdout.strip() == "mirror"
    assert daemon.status()["displays"]["curtain"] is False  # type: ignore[index]


def test_press_and_hold_drive_the_station(daemon: Daemon) -> None:
    daemon.ctl("sim", "press")
    assert daemon.status()["station"]["state"] == "ready"  # type: ignore[index]
    daemon.ctl("sim", "press")
    assert daemon.status()["station"]["state"] == "in_session"  # type: ignore[index]
    assert "off" in daemon.ctl("--json", "sim", "hold").stdout  # the answer already shows the end of day
    assert daemon.status()["station"]["state"] == "off"  # type: ignore[index]


def test_shore_unplug_shows_in_the_event_stream(daemon: Daemon) -> None:
    seen: list[dict[str, object]] = []
    got_it = threading.Event()
    connected = threading.Event()

    def follow() -> None:
        transport = httpx.HTTPTransport(uds=str(daemon.socket_path))
        with (
            httpx.Client(transport=transport, base_url="http://kioskd", timeout=30) as client,
            client.stream("GET", "/events") as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    state = json.loads(line[6:])
                    seen.append(state)
                    connected.set()
                    if state["power"]["shore"] is False:
                        got_it.set()
                        return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert connected.wait(20)
    assert seen[0]["power"]["shore"] is True  # type: ignore[index]
    daemon.ctl("sim", "shore", "off")
    assert got_it.wait(20), "the shore unplug never reached the event stream"


def test_panel_port_needs_the_token(daemon: Daemon) -> None:
    api = json.loads((daemon.runtime / "api.json").read_text())
    token = (daemon.runtime / "panel-token").read_text().strip()
    assert stat.S_IMODE(os.stat(daemon.runtime / "panel-token").st_mode) == 0o640  # the agents' group reads it
    url = f"http://127.0.0.1:{api['port']}/status"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["station"]["state"] == "off"
    spec = httpx.get(f"http://127.0.0.1:{api['port']}/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert "/sim/{verb}" in spec.json()["paths"]


def test_hostile_requests_get_clear_errors_and_the_daemon_keeps_running(daemon: Daemon) -> None:
    transport = httpx.HTTPTransport(uds=str(daemon.socket_path))
    with httpx.Client(transport=transport, base_url="http://kioskd") as client:
        assert client.post("/sim/no-such-verb", json={"args": []}).status_code == 404
        assert client.post("/sim/../../etc", json={"args": []}).status_code == 404
        assert client.post("/sim/soc", json={"args": ["1"] * 100}).status_code == 400
        assert (
            client.post(
                "/sim/soc", content=b"\xff\xfe garbage", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
        body = client.post("/sim/soc", json={"args": ["x" * 65]}).json()
        assert "error" in body and body["error"]["fr"].startswith("Requête invalide")
        assert client.get("/status").status_code == 200


def test_watchdog_status_and_clean_stop(daemon: Daemon) -> None:
    daemon.wait_for("WATCHDOG=1")
    daemon.ctl("start")
    daemon.wait_for("STATUS=ready")
    assert daemon.stop() == 0
    daemon.wait_for("STOPPING=1", timeout=1)
    assert not daemon.socket_path.exists()


def test_day_on_tour_scenario_ends_with_the_expected_sessions_and_the_station_shut_down(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--scenario", str(ROOT / "scenarios" / "day-on-tour.toml"), "--speed", "6000")
    try:
        code = d.proc.wait(120)
    finally:
        d.kill()
    out = d.log.read_text()
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("SUMMARY "))[8:])
    assert code == 0, out
    assert summary["sessions"] == 8
    assert summary["final_state"] == "off" and summary["shutdown_reason"] == "power"
    assert summary["wipes_verified"] == 8 and summary["wipes_failed"] == 0
    assert summary["refusals"] == ["14:40 next: refused.power.low"]
    assert summary["soc_at_shutdown"] > 5, "the station must stop with a reserve left"


def test_a_scenario_whose_expectations_fail_exits_non_zero(tmp_path: Path) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        'name = "court"\nstart = "08:00"\n[[step]]\nat = "08:00"\ndo = "start"\n'
        '[[step]]\nat = "08:10"\ndo = "next"\n[expect]\nsessions = 3\n'
    )
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "kioskd"),
            "--scenario",
            str(scenario),
            "--speed",
            "1000",
            "--runtime-dir",
            str(tmp_path / "r"),
            "--state-dir",
            str(tmp_path / "s"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "expected 3 sessions, got 1" in result.stdout
