"""The connectivity commands end to end: kioskd as a subprocess on the simulated van (accelerated clock), driven
with ``kioskctl stop``, ``kioskctl atlas`` and the modem's sim verbs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kioskd.cli import render_status
from tests.integration.daemon_process import Daemon, start_daemon

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, "--speed", "600")  # a probe every 60 simulated seconds: ten a second
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.stop()


def eventually(what: str, check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.1)


def test_a_named_stop_gets_samples_and_shows_in_the_atlas(daemon: Daemon) -> None:
    assert daemon.ctl("stop", "Sarlat — mairie").stdout.strip() == "Arrêt : Sarlat — mairie"
    assert "Arrêt : Sarlat — mairie" in daemon.ctl("status").stdout
    atlas = eventually("a sample", lambda: json.loads(daemon.ctl("--json", "atlas").stdout))
    assert atlas[0]["stop"] == "Sarlat — mairie" and atlas[0]["median_signal"] == 70
    assert atlas[0]["reachability"] == 1.0
    table = daemon.ctl("--lang", "en", "atlas").stdout.splitlines()
    assert table[0].split()[:2] == ["rank", "stop"] and "Sarlat" in table[1]
    assert daemon.ctl("stop").stdout.strip() == "Aucun arrêt en cours"


def test_link_up_without_internet_shows_in_status_and_notices(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--speed", "60")  # 5 real seconds between the failure and the recovery step
    try:
        daemon.wait_for("READY=1")
        daemon.ctl("sim", "internet", "down")

        def failing() -> dict[str, Any] | None:
            status = daemon.status()
            return status if status["connectivity"]["internet"] is False else None  # type: ignore[index]

        status = eventually("the probe to fail", failing, within=30)
        assert status["modem"]["connected"] is True
        assert "modem.no_internet" in [n["key"] for n in status["notices"]]
        assert "Internet non (unreachable)" in render_status(status, "fr")
        # five simulated minutes later the policy reconnects the bearer, which cures a stale one
        recovered = lambda: daemon.status()["connectivity"]["internet"] is True  # type: ignore[index]  # noqa: E731
        eventually("the recovery", recovered, within=60)
    finally:
        daemon.stop()


def test_a_stop_name_too_long_is_refused_with_a_clear_error(daemon: Daemon) -> None:
    result = daemon.ctl("stop", "x" * 65, check=False)
    assert result.returncode == 1 and "name" in result.stderr
