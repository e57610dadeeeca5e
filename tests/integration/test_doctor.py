"""`kioskctl doctor` on the simulated van: every line passes on a healthy van (the active probes included: a test
scan, the LED and a press), and injected faults turn their lines to failures with what to do, exit status 1."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import Daemon, start_daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    # the runtime dir on a tmpfs, as in the van (/run): the doctor checks it
    runtime = Path(tempfile.mkdtemp(prefix="kd-", dir="/dev/shm"))
    profile = tmp_path / "profile.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("page_seconds = 4.0", "page_seconds = 0.2"))
    d = start_daemon(tmp_path, "--profile", str(profile), runtime=runtime)
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()
        shutil.rmtree(runtime, ignore_errors=True)


def _doctor(daemon: Daemon, *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = daemon.ctl("--json", "doctor", *args, check=False)
    body = json.loads(result.stdout)
    return result.returncode, {check["name"]: check for check in body["checks"]}


def test_a_healthy_simulated_van_passes_every_line(daemon: Daemon) -> None:
    code, checks = _doctor(daemon)
    verdicts = {name: check["verdict"] for name, check in checks.items()}
    assert code == 0, verdicts
    for name in ("power", "modem", "displays", "scanner", "printer", "audio", "camera", "clock", "disk", "runtime"):
        assert verdicts[name] == "ok", checks[name]
    assert "test scan" in checks["scanner"]["detail"]
    assert "1280x720" in checks["camera"]["detail"], "the camera's health check ran"
    assert verdicts["button"] == "info" and "--button" in checks["button"]["action"]["fr"]
    human = daemon.ctl("doctor").stdout
    assert "scanner" in human and "OK" in human


def test_the_button_line_waits_for_a_press_that_starts_nothing(daemon: Daemon) -> None:
    result: list[tuple[int, dict[str, dict[str, Any]]]] = []
    waiter = threading.Thread(target=lambda: result.append(_doctor(daemon, "--button", "10")))
    waiter.start()
    for _ in range(100):
        if daemon.status()["button"]["led"] != "off":  # type: ignore[index]
            break  # the LED says "press me": the doctor is waiting
        threading.Event().wait(0.05)
    daemon.ctl("sim", "press")
    waiter.join(20)
    code, checks = result[0]
    assert checks["button"]["verdict"] == "ok", checks["button"]
    assert daemon.status()["station"]["state"] == "off", "the doctor's press must not start the station"
    assert code == 0


def test_injected_faults_fail_their_lines_with_what_to_do(daemon: Daemon) -> None:
    daemon.ctl("sim", "printer", "jam")
    daemon.ctl("sim", "scanner", "unplug")
    daemon.ctl("sim", "output", "citizen", "unplug")
    code, checks = _doctor(daemon)
    assert code == 1
    assert checks["printer"]["verdict"] == "fail" and "media-jam" in checks["printer"]["detail"]
    assert checks["scanner"]["verdict"] == "fail" and "Scanner absent" in checks["scanner"]["action"]["fr"]
    assert checks["displays"]["verdict"] == "fail" and "citoyen" in checks["displays"]["action"]["fr"]
    assert checks["modem"]["verdict"] == "ok", "a fault elsewhere leaves the other lines alone"
    human = daemon.ctl("doctor", check=False)
    assert human.returncode == 1 and "ÉCHEC" in human.stdout


def test_a_button_that_is_never_pressed_fails_after_the_wait(daemon: Daemon) -> None:
    code, checks = _doctor(daemon, "--button", "0.5")
    assert code == 1 and checks["button"]["verdict"] == "fail"
    assert "0.5 s" in checks["button"]["action"]["en"]


def test_a_link_that_carries_nothing_is_a_warning_from_the_profiles_probe(daemon: Daemon) -> None:
    daemon.ctl("sim", "internet", "down")  # the bearer stays up, nothing passes
    code, checks = _doctor(daemon)
    assert code == 1 and checks["modem"]["verdict"] == "warn", checks["modem"]
    assert "probe" in checks["modem"]["detail"] and "APN" in checks["modem"]["action"]["fr"]
