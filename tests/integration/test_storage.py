"""Broken storage under a real daemon (issue 18): a garbage store at start-up, a full state disk, the runtime dir
deleted under a running kioskd, the simulated printer's spool after kill -9, and a wall clock years off at start.
In every case the citizen's data is wiped, the agent is told, and the station recovers when the fault is gone."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.integration.daemon_process import Daemon, start_daemon
from tests.integration.require import binary
from tests.integration.test_wipe import _wait, find, profile_with, write_canaries


def _directory_profile(tmp: Path) -> Path:
    """A workspace that is a plain directory: what a crash leaves of it stays on disk for the next start to wipe."""
    return profile_with(tmp, ["sh", "-c", "exec sleep 600"], workspace="directory")


def _notices(daemon: Daemon) -> dict[str, dict[str, object]]:
    notices: list[dict[str, object]] = daemon.status()["notices"]  # type: ignore[assignment]
    return {str(n["key"]): n for n in notices}


def _receipts(daemon: Daemon) -> list[dict[str, object]]:
    return json.loads(daemon.ctl("--json", "receipts", "--limit", "50").stdout)  # type: ignore[no-any-return]


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (the tests run as root), unmounted whatever happens."""
    assert os.geteuid() == 0, "a full state disk is a tmpfs mounted by the test: run the tests as root (CI does)"
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "kiosk-test-state", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte; returns the file that holds the space (delete it to free the disk)."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as out:
        block = b"\0" * 65536
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # and the last bytes, one at a time
    with open(filler, "ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0")
    return filler


# ----------------------------------------------------------------------------------------------- a garbage store
def test_a_garbage_store_with_a_pending_wipe_is_set_aside_and_the_wipe_runs_first(tmp_path: Path) -> None:
    canary = "STORE-" + secrets.token_hex(6)
    profile = _directory_profile(tmp_path)
    first = start_daemon(tmp_path, "--profile", str(profile), name="first")
    try:
        session = first.open_session()
        write_canaries(Path(session["workspace"]), canary)
        first.proc.kill()  # a crash mid-session: the journal says a wipe is pending
        first.proc.wait(10)
    finally:
        first.kill()
    store = tmp_path / "state" / "kioskd.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(b"\x13\x37 not a database at all " * 500)
    assert list((tmp_path / "state" / "wipe-journal").iterdir()), "no pending wipe to test"

    second = start_daemon(tmp_path, "--profile", str(profile), name="second")
    try:
        second.wait_for("READY=1")
        assert find(canary, tmp_path / "run", tmp_path / "state") == [], "the pending wipe did not run"
        assert second.status()["station"]["state"] == "ready"  # type: ignore[index]
        aside = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("kioskd.sqlite.broken-")]
        assert len(aside) == 1 and stat.S_IMODE(aside[0].stat().st_mode) == 0o600, aside
        assert aside[0].read_bytes().startswith(b"\x13\x37 not a database")
        notice = _notices(second)["store.set_aside"]
        assert aside[0].name in str(notice["fr"]) and "not a database" in str(notice["en"]), notice
        receipts = _receipts(second)
        assert receipts[0]["session"] == session["id"] and receipts[0]["verified"], receipts
        doctor = json.loads(second.ctl("--json", "doctor", check=False).stdout)
        lines = {c["name"]: c for c in doctor["checks"]}
        assert lines["store"]["verdict"] == "warn" and aside[0].name in lines["store"]["detail"], lines["store"]
    finally:
        assert second.stop() == 0
    assert "Traceback" not in (tmp_path / "second.log").read_text()


# ----------------------------------------------------------------------------------------------- a full disk
def test_a_full_state_disk_still_wipes_on_next_says_so_and_recovers_once_space_is_freed(tmp_path: Path) -> None:
    canary = "FULL-" + secrets.token_hex(6)
    with small_disk(tmp_path / "state", "16m") as disk:
        daemon = start_daemon(tmp_path, "--profile", str(_directory_profile(tmp_path)))
        try:
            session = daemon.open_session()
            write_canaries(Path(session["workspace"]), canary)
            filler = fill(disk)
            answer = daemon.ctl("next", check=False)
            assert answer.returncode == 1, answer
            assert "Données du citoyen effacées, mais pas de nouvelle session" in answer.stderr, answer.stderr
            assert "Internal Server Error" not in answer.stderr and "500" not in answer.stderr
            assert find(canary, tmp_path / "run") == [], "the full disk stopped the wipe"
            status = daemon.status()
            assert status["station"]["state"] == "ready", status  # type: ignore[index]
            notices = _notices(daemon)
            assert "refused.journal" in notices, notices
            # the receipt is not lost: on disk, or kept until the disk takes it (and the panel shows it meanwhile)
            receipts = _receipts(daemon)
            assert receipts and receipts[0]["session"] == session["id"] and receipts[0]["verified"], receipts
            retry = daemon.ctl("wipe", "--retry", check=False)
            assert "500" not in retry.stderr and "Internal" not in retry.stderr, retry
            again = daemon.ctl("next", check=False)
            assert again.returncode == 1 and "pas de nouvelle session" in again.stderr, again.stderr
            assert len(list((disk / "wipe-journal").iterdir())) == 0, "a refused session left a journal entry"

            filler.unlink()  # the technician frees the disk
            daemon.ctl("next")
            second = daemon.status()
            assert second["station"]["state"] == "in_session"  # type: ignore[index]
            daemon.ctl("next")  # and the next wipe writes every receipt kept meanwhile
            sessions = [r["session"] for r in _receipts(daemon)]
            assert session["id"] in sessions and second["session"]["id"] in sessions  # type: ignore[index]
            assert not {"refused.journal", "journal.unwritable", "store.unwritable"} & set(_notices(daemon))
        finally:
            daemon.stop()
    assert "Traceback" not in (tmp_path / "kioskd.log").read_text()


def test_a_receipt_the_full_disk_refuses_is_kept_and_written_once_space_is_freed(tmp_path: Path) -> None:
    """The store refuses the wipe's receipt (SQLite's log needs room the disk no longer has): the station must leave
    wiping (the citizen is gone), show the receipt, and write it later, not stay stuck with "nothing to wipe"."""
    with small_disk(tmp_path / "state", "16m") as disk:
        daemon = start_daemon(tmp_path, "--profile", str(_directory_profile(tmp_path)))
        try:
            session = daemon.open_session()
            for _ in range(3):  # what the store writes meanwhile (power samples) must not find room either
                filler = fill(disk)
            answer = daemon.ctl("next", check=False)
            assert daemon.status()["station"]["state"] in ("ready", "in_session"), answer  # type: ignore[index]
            receipts = _receipts(daemon)
            assert receipts[0]["session"] == session["id"], receipts
            notice = _notices(daemon)["store.unwritable"]  # kept in memory, counted in the notice
            assert "1 wipe receipt(s) waiting" in str(notice["en"]), notice
            doctor = json.loads(daemon.ctl("--json", "doctor", check=False).stdout)
            assert {c["name"]: c["verdict"] for c in doctor["checks"]}["store"] == "fail"
            filler.unlink()
            daemon.ctl("wipe", "--retry", check=False)
            if daemon.status()["station"]["state"] == "ready":  # type: ignore[index]
                daemon.ctl("next")
            daemon.ctl("next")
            assert session["id"] in [r["session"] for r in _receipts(daemon)]
            assert "store.unwritable" not in _notices(daemon)
        finally:
            daemon.stop()


# ----------------------------------------------------------------------------------------------- the runtime dir
def test_the_runtime_dir_deleted_under_a_running_daemon_does_not_break_next(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--profile", str(_directory_profile(tmp_path)))
    try:
        daemon.wait_for("READY=1")
        daemon.ctl("start")
        api = json.loads((daemon.runtime / "api.json").read_text())
        token = (daemon.runtime / "panel-token").read_text().strip()
        shutil.rmtree(daemon.runtime)  # a technician's cleanup, or tmpfiles.d's
        panel = httpx.Client(
            base_url=f"http://127.0.0.1:{api['port']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        journal = tmp_path / "state" / "wipe-journal"
        for attempt in range(3):
            answer = panel.post("/next")
            assert answer.status_code == 200, answer.text
            status = panel.get("/status").json()
            assert status["station"]["state"] == "in_session", status
            workspace = Path(status["session"]["workspace"])
            assert workspace.is_dir()
            (workspace / "downloads" / f"attempt-{attempt}.pdf").write_text("citizen")
            assert len(list(journal.iterdir())) == 1, "one journal entry per attempt"
        assert find("citizen", daemon.runtime) != []
        panel.post("/next")
        receipts = panel.get("/receipts").json()
        assert all(r["verified"] for r in receipts[:3]), receipts
    finally:
        daemon.stop()


# ----------------------------------------------------------------------------------------------- the sim's spool
def test_the_sim_printers_queued_jobs_are_cancelled_by_the_recovery_wipe_after_kill_9(tmp_path: Path) -> None:
    profile = _directory_profile(tmp_path)
    first = start_daemon(tmp_path, "--profile", str(profile), name="first")
    document = tmp_path / "doc.pdf"
    document.write_bytes(b"%PDF-1.4 PRINT-CANARY /Type /Page")
    spool = tmp_path / "run" / "sim-printer-spool"
    try:
        session = first.open_session()
        first.ctl("sim", "printer", "paper", "0")  # the jobs wait in the queue
        first.ctl("print", str(document))
        first.ctl("sim", "printer", "app-job", "PRINT-CANARY from the app")
        _wait(lambda: len(list(spool.glob("d*"))) == 2)
        first.proc.kill()
        first.proc.wait(10)
    finally:
        first.kill()
    assert find("PRINT-CANARY", spool), "nothing in the spool to test"

    second = start_daemon(tmp_path, "--profile", str(profile), name="second")
    try:
        second.wait_for("READY=1")
        assert find("PRINT-CANARY", tmp_path / "run") == [], "the spool kept the citizen's documents"
        assert list(spool.iterdir()) == [], "the queue still lists the session's jobs"
        receipt = _receipts(second)[0]
        assert receipt["session"] == session["id"] and receipt["verified"], receipt
        jobs = json.loads(second.ctl("--json", "jobs").stdout)
        assert jobs == [] or all(j["session"] != session["id"] for j in jobs), jobs
    finally:
        second.stop()


# ----------------------------------------------------------------------------------------------- the clock
def _faketime(offset: str) -> dict[str, str]:
    """libfaketime on kioskd's wall clock only (the event loop's monotonic clock stays true)."""
    binary("faketime", "faketime")
    lib = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
    assert lib is not None, "libfaketime.so.1 not found: apt-get install faketime"
    return {"LD_PRELOAD": str(lib), "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}


def _visits(tmp: Path, profile: Path, env: dict[str, str], name: str, count: int) -> list[str]:
    daemon = start_daemon(tmp, "--profile", str(profile), env=env, name=name)
    try:
        daemon.open_session()
        for _ in range(count - 1):
            daemon.ctl("next")
        daemon.ctl("end-of-day")
        return [str(r["session"]) for r in _receipts(daemon)]
    finally:
        daemon.stop()


def test_a_wall_clock_two_years_ahead_at_start_keeps_every_receipt(tmp_path: Path) -> None:
    profile = _directory_profile(tmp_path)
    written = _visits(tmp_path, profile, {}, "today", 3)
    assert len(written) == 3
    ahead = start_daemon(tmp_path, "--profile", str(profile), env=_faketime("+730d"), name="ahead")
    try:
        ahead.wait_for("READY=1")
        assert json.loads(ahead.ctl("--json", "status").stdout)["station"]["since"] > 1_800_000_000, "not faked"
        kept = [str(r["session"]) for r in _receipts(ahead)]
        assert set(written) <= set(kept), f"a clock two years ahead deleted receipts: {written} → {kept}"
    finally:
        ahead.stop()


def test_receipts_written_while_the_clock_was_years_behind_survive_the_next_start(tmp_path: Path) -> None:
    profile = _directory_profile(tmp_path)
    written = _visits(tmp_path, profile, _faketime("-730d"), "behind", 3)
    assert len(written) == 3
    right = start_daemon(tmp_path, "--profile", str(profile), name="right")
    try:
        right.wait_for("READY=1")
        kept = [str(r["session"]) for r in _receipts(right)]
        assert set(written) <= set(kept), f"the right clock deleted what a wrong one wrote: {written} → {kept}"
    finally:
        right.stop()
