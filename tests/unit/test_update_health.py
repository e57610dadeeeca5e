"""The boot's health check (kioskd/update/health.py): which states of kioskd.service make a slot good or bad, and which
of the doctor's lines count (the PC's own, not the devices': an unplugged printer must not abandon an update)."""

from __future__ import annotations

from collections.abc import Iterator

from kioskd.update.health import essential_failures, wait_ready


def shows(*states: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from states
    while True:
        yield states[-1]


def test_kioskd_reaching_ready_after_a_slow_start_is_healthy() -> None:
    states = shows({"ActiveState": "activating", "SubState": "start"}, {"ActiveState": "active", "SubState": "running"})
    pauses: list[float] = []
    assert wait_ready(lambda: next(states), 60, 3, pauses.append) == ""
    assert pauses == [2.0]


def test_kioskd_that_keeps_failing_to_start_is_not() -> None:
    states = shows(*({"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": str(n)} for n in range(5)))
    assert "restarted 3 times" in wait_ready(lambda: next(states), 60, 3, lambda _: None)
    failed = shows({"ActiveState": "failed", "SubState": "failed", "Result": "exit-code"})
    assert wait_ready(lambda: next(failed), 60, 3, lambda _: None) == "kioskd failed (exit-code)"


def test_kioskd_never_ready_within_the_timeout_is_not() -> None:
    states = shows({"ActiveState": "activating", "SubState": "start", "NRestarts": "0"})
    assert "not READY after 0 s" in wait_ready(lambda: next(states), 0, 3, lambda _: None)


def test_only_the_pcs_own_doctor_lines_decide() -> None:
    checks = [
        {"name": "printer", "verdict": "fail", "detail": "absent"},
        {"name": "modem", "verdict": "fail", "detail": "unregistered"},
        {"name": "disk", "verdict": "ok"},
        {"name": "runtime", "verdict": "ok"},
        {"name": "store", "verdict": "ok"},
        {"name": "app_user", "verdict": "ok"},
    ]
    assert essential_failures(checks) == []
    checks[4] = {"name": "store", "verdict": "fail", "detail": "unwritable"}
    assert essential_failures(checks) == ["store: unwritable"]
    assert essential_failures([c for c in checks if c["name"] != "runtime"])[0] == "runtime: missing"
