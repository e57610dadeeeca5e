"""Sessions on the simulated van: the idle countdown, the session app's stop, the wipe's verdicts and receipts."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from kioskd.clock import RealClock
from kioskd.errors import WipeError
from kioskd.records.store import Store
from kioskd.session.app import SessionApp, session_processes
from kioskd.session.workspace import create
from tests.conftest import Rig, make_rig, sim_profile


@pytest.fixture
async def idle_rig(tmp_path: Path) -> Rig:
    profile = sim_profile(station={"workspace": "directory", "idle_timeout": 120, "idle_warning": 30})
    return await make_rig(tmp_path, profile)


async def test_idle_session_warns_then_wipes_and_activity_resets_the_countdown(idle_rig: Rig) -> None:
    rig = idle_rig
    await rig.station.start()
    await rig.station.next_citizen()
    first = rig.station.session
    assert first is not None
    await rig.run(89)
    assert all(n.key != "session.idle.warning" for n in rig.station.state.notices)
    await rig.run(2)
    warning = [n for n in rig.station.state.notices if n.key == "session.idle.warning"]
    assert warning and dict(warning[0].params)["seconds"] == 30
    assert rig.station.state.session is not None and rig.station.state.session.idle_deadline is not None
    rig.station.touch()  # the agent typed something
    assert all(n.key != "session.idle.warning" for n in rig.station.state.notices)
    await rig.run(100)
    assert rig.station.mode == "in_session" and rig.station.session is first
    await rig.run(30)
    assert rig.station.mode == "ready"
    assert rig.station.wipes[-1].reason == "idle" and rig.station.wipes[-1].verified
    assert not first.workspace.root.exists()


async def test_a_scan_counts_as_activity(idle_rig: Rig) -> None:
    rig = idle_rig
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.run(80)
    await rig.sim("scanner", "load", "1")
    assert rig.devices.simulation is not None
    scan = asyncio.ensure_future(rig.devices.scanner.scan(__import__("kioskd.hal").hal.ScanRequest("adf")))
    while not scan.done():
        await rig.clock.advance(1)
    await rig.run(80)
    assert rig.station.mode == "in_session", "the scan at 84 s restarted the 90 s countdown"


async def test_session_app_gets_sigterm_then_sigkill_and_no_process_survives(tmp_path: Path) -> None:
    ws = await create(tmp_path / "ws", "directory", "10M")
    stubborn = (
        "import signal, subprocess, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True);"
        "time.sleep(300)"
    )
    app = SessionApp([sys.executable, "-c", stubborn], grace=0.5, clock=RealClock())
    await app.start("abcd1234", ws)
    for _ in range(100):
        if len(session_processes("abcd1234")) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(session_processes("abcd1234")) == 2, "the app and its escaped child both carry the mark"
    await app.stop("abcd1234")
    assert session_processes("abcd1234") == []


async def test_app_environment_points_everything_into_the_workspace(tmp_path: Path) -> None:
    ws = await create(tmp_path / "ws", "directory", "10M")
    out = ws.tmp / "env"
    app = SessionApp(["sh", "-c", f"env > {out}"], grace=1, clock=RealClock())
    await app.start("s1", ws)
    assert app.process is not None
    await app.process.wait()
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["HOME"] == str(ws.home) and env["TMPDIR"] == str(ws.tmp)
    assert env["XDG_DOWNLOAD_DIR"] == str(ws.downloads) and env["KIOSK_SESSION"] == "s1"
    assert "KIOSKD_SOCKET" not in env and "NOTIFY_SOCKET" not in env
    assert oct(os.stat(ws.root).st_mode & 0o777) == "0o700"


async def test_failed_handler_is_retried_reported_and_blocks_next(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.sim("printer", "stuck")
    with pytest.raises(WipeError) as err:
        await rig.station.next_citizen()
    assert err.value.key == "wipe.failed" and "print_jobs" in err.value.params["handler"]
    verdicts = {v.name: v for v in rig.station.wipes[-1].verdicts}
    assert not verdicts["print_jobs"].ok and "refuses to purge" in verdicts["print_jobs"].reason
    assert all(v.ok for name, v in verdicts.items() if name != "print_jobs"), "the other handlers still ran"
    assert rig.station.mode == "wiping"


async def test_receipts_hold_verdicts_and_counts_and_nothing_personal(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    (session.workspace.scans / "scan-dupont-jean.pdf").write_bytes(b"%PDF canary-dupont")
    (session.workspace.downloads / "avis-impot-dupont.pdf").write_bytes(b"%PDF canary-dupont")
    await rig.station.print_document(b"%PDF-1.4 canary-dupont")
    await rig.drive(rig.station.next_citizen())  # the print grace lets the job finish first
    store = Store(rig.state_dir / "kioskd.sqlite")
    receipt = (await store.receipts(1))[0]
    assert receipt.session == session.id and receipt.reason == "next" and receipt.verified
    assert (receipt.scans, receipt.downloads, receipt.prints) == (1, 1, 1)
    names = {h["name"] for h in receipt.handlers}
    assert names == {
        "app",
        "layout",
        "browser",
        "downloads",
        "scans",
        "print_jobs",
        "clipboard",
        "audio",
        "camera",
        "media",
        "inputs",
        "workspace",
    }
    for path in rig.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"dupont" not in data, f"{path.name} holds a citizen's name"


async def test_what_the_session_app_prints_itself_is_counted_and_purged_at_the_wipe(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    await rig.sim("printer", "app-job", "Avis d'imposition de M. Dupont")
    await rig.station.print_document(b"%PDF-1.4 kioskd's own")
    assert len(await rig.devices.printer.jobs(session.id)) == 2
    assert (await rig.station.snapshot()).session.print_jobs == 2  # type: ignore[union-attr]
    await rig.sim("printer", "paper", "0")  # nothing finishes: the wipe must cancel and purge both
    outcome_task = rig.drive(rig.station.next_citizen())
    await outcome_task
    assert await rig.devices.printer.verify_purged(session.id) == ()
    spool = rig.runtime / "sim-printer-spool"
    assert not any(b"Dupont" in p.read_bytes() for p in spool.iterdir())
    receipt = (await Store(rig.state_dir / "kioskd.sqlite").receipts(1))[0]
    assert receipt.prints == 2


async def test_a_feeder_stack_longer_than_the_idle_timeout_is_not_wiped_mid_scan(tmp_path: Path) -> None:
    profile = sim_profile(station={"workspace": "directory", "idle_timeout": 60, "idle_warning": 20})
    rig = await make_rig(tmp_path, profile)
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    await rig.sim("scanner", "load", "20")  # 20 sheets at 4 s each: 80 s, longer than the 60 s idle timeout
    scan = asyncio.ensure_future(rig.station.scan("adf", "gray", True, "impots"))
    while not scan.done():  # simulated time paced by real time: the pipeline's own work takes real seconds
        await rig.clock.advance(1.0)
        await asyncio.sleep(0.002)
    result = scan.result()
    assert result["ok"] and result["pages"] == 20, result
    assert rig.station.mode == "in_session" and rig.station.session is session
    assert all(w.reason != "idle" for w in rig.station.wipes)
