"""Proof under faults: every fault scenario on the simulated van ends with the station serving or stopped safely,
its notices shown, and no citizen canary anywhere (workspaces, state, store, logs); and ``kill -9`` of kioskd in
every station state leaves nothing of a citizen once the next start says READY=1."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from kioskd.scenario import find_canary
from tests.integration.daemon_process import ROOT, Daemon, start_daemon

FAULTS = sorted((ROOT / "scenarios" / "faults").glob("*.toml"))


@pytest.mark.parametrize("scenario", FAULTS, ids=[path.stem for path in FAULTS])
def test_fault_scenario_keeps_serving_and_leaves_no_canary(tmp_path: Path, scenario: Path) -> None:
    daemon = start_daemon(tmp_path, "--scenario", str(scenario), "--speed", "6000")
    try:
        code = daemon.proc.wait(180)
    finally:
        daemon.kill()
    log = daemon.log.read_text()
    summary = json.loads(next(line for line in log.splitlines() if line.startswith("SUMMARY "))[8:])
    assert code == 0 and summary["ok"], summary
    assert summary["residues"] == [] and summary["wipes_failed"] == 0
    assert summary["final_state"] == "off"
    # the runner's canaries all start so: none may reach the logs (the summary line names none)
    assert "CANARY-" not in log


def _plant(workspace: Path, canary: str) -> None:
    (workspace / "downloads" / "avis.pdf").write_text(f"%PDF-1.4 {canary}")
    (workspace / "browser" / "Cookies").write_bytes(canary.encode("utf-16-le"))


def _until(daemon: Daemon, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.status()["station"]["state"] == state:  # type: ignore[index]
            return
        time.sleep(0.05)
    raise AssertionError(f"never reached {state}")


# state → how to get there (with a session's canary planted where there is a session) and how the crash happens
STATES = ["off", "ready", "in_session", "travelling", "starting", "wiping", "shutting_down"]


@pytest.mark.parametrize("state", STATES)
def test_kill_9_in_every_station_state_leaves_nothing_after_the_restart(tmp_path: Path, state: str) -> None:
    canary = "KILL9-" + os.urandom(6).hex()
    # wiping/shutting_down/starting are passing states: the wipe's fault hook kills the daemon inside them
    fault = {"wiping": "handlers", "shutting_down": "handlers", "starting": "app"}.get(state)
    first = start_daemon(tmp_path, env={"KIOSKD_FAULT_WIPE": fault} if fault and state != "starting" else {})
    try:
        first.wait_for("READY=1")
        if state != "off":
            first.ctl("start")
        if state in ("in_session", "wiping", "shutting_down", "starting"):
            first.ctl("next")
            _plant(Path(first.status()["session"]["workspace"]), canary)  # type: ignore[index]
        if state == "travelling":
            first.ctl("sim", "ignition", "on")
            _until(first, "travelling")
        if state in ("wiping", "starting"):
            first.ctl("next", check=False)  # the hook kills kioskd after the handlers ran (starting: see below)
        elif state == "shutting_down":
            first.ctl("end-of-day", check=False)
        if state in ("off", "ready", "in_session", "travelling", "starting"):
            assert first.status()["station"]["state"] == {"starting": "in_session"}.get(state, state)  # type: ignore[index]
            first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(30) != 0
    finally:
        first.kill()
    if state == "starting":
        # a start with a journalled session runs its recovery wipe in "starting": crash it there too
        second = start_daemon(tmp_path, env={"KIOSKD_FAULT_WIPE": "app"}, name="crash-in-starting")
        try:
            second.wait_for("STATUS=", 30)
            assert second.proc.wait(30) != 0, "the recovery wipe's fault hook kills kioskd while starting"
        finally:
            second.kill()
    last = start_daemon(tmp_path, name="after")
    try:
        last.wait_for("READY=1")
        assert find_canary(canary, [tmp_path / "run", tmp_path / "state"]) == []
        assert not list((tmp_path / "state" / "wipe-journal").iterdir())
        # after the recovery wipe the station is off, or ready again when a session was cut short
        assert last.status()["station"]["state"] in ("off", "ready")  # type: ignore[index]
        if last.status()["station"]["state"] == "off":  # type: ignore[index]
            last.ctl("start")
        last.ctl("next")
        assert last.status()["station"]["state"] == "in_session", "the station serves again"  # type: ignore[index]
    finally:
        last.kill()
    assert canary not in (tmp_path / "kioskd.log").read_text() + (tmp_path / "after.log").read_text()
