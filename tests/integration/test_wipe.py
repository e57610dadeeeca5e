"""The promise to the citizen, checked forensically on a real daemon: after "next", nothing of theirs is anywhere
(runtime dir, state dir and its SQLite store, the logs), even with a real Chromium as the session app, and even
when kioskd is killed at any step of the wipe."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from kioskd.profile import SIM_PROFILE
from kioskd.scenario import find_canary
from kioskd.session.workspace import is_mountpoint
from tests.integration.daemon_process import Daemon, short_runtime, start_daemon
from tests.integration.page_server import HTML, PageServer
from tests.integration.require import binary


def find(canary: str, *roots: Path) -> list[str]:
    """Every file under ``roots`` holding the canary, as UTF-8 or UTF-16 (Chromium's localStorage)."""
    return find_canary(canary, list(roots))


def profile_with(tmp: Path, app: list[str], **station: object) -> Path:
    text = SIM_PROFILE.read_text().replace("app = []", f"app = {json.dumps(app)}")
    for key, value in station.items():  # replace the [station] key in place: TOML forbids a second one
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {json.dumps(value)}", text, count=1)
    path = tmp / "profile.toml"
    path.write_text(text)
    return path


def write_canaries(workspace: Path, canary: str) -> None:
    (workspace / "scans" / "scan-20261123-101500.pdf").write_text(f"%PDF-1.4 {canary}")
    (workspace / "downloads" / "avis-imposition.pdf").write_text(f"%PDF-1.4 {canary}")
    (workspace / "home" / "notes.txt").write_text(canary)


# ----------------------------------------------------------------------------------------------- Chromium
PAGE = """<!doctype html><meta charset="utf-8"><title>démarche</title><script>
async function idbGet() {
  return new Promise((ok) => {
    const open = indexedDB.open('demarche', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('s');
    open.onsuccess = () => {
      const get = open.result.transaction('s').objectStore('s').get('canary');
      get.onsuccess = () => ok(get.result || ''); get.onerror = () => ok('');
    };
    open.onerror = () => ok('');
  });
}
async function idbPut(v) {
  return new Promise((ok) => {
    const open = indexedDB.open('demarche', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('s');
    open.onsuccess = () => {
      const tx = open.result.transaction('s', 'readwrite');
      tx.objectStore('s').put(v, 'canary'); tx.oncomplete = () => ok();
    };
  });
}
(async () => {
  const seen = {cookie: document.cookie, ls: localStorage.getItem('canary') || '', idb: await idbGet()};
  await fetch('/report?' + new URLSearchParams(seen));
  const c = await (await fetch('/token', {cache: 'no-store'})).text();  // the citizen's data: first visit only
  if (!c) return;
  document.cookie = 'canary=' + c + '; max-age=86400; path=/';
  localStorage.setItem('canary', c);
  await idbPut(c);
  await fetch('/stored');
})();
</script>"""


class Site:
    """A public-service web site stand-in on 127.0.0.1 that records what each browser session reported."""

    def __init__(self, canary: str) -> None:
        self.canary = canary
        self.handed_out = False
        self.reports: list[dict[str, str]] = []
        self.stored = threading.Event()
        self.reported = threading.Event()
        self.server = PageServer(self._answer, {"Cache-Control": "no-store", **HTML})
        self.url = self.server.url

    def _answer(self, path: str) -> bytes:
        url = urlparse(path)
        if url.path == "/report":
            self.reports.append({k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
            self.reported.set()
        elif url.path == "/stored":
            self.stored.set()
        body = b"ok"
        if url.path == "/":
            body = PAGE.encode()
        elif url.path == "/token":
            body, self.handed_out = (b"" if self.handed_out else self.canary.encode()), True
        return body

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site("kc-" + secrets.token_hex(8))
    yield s
    s.close()


def chromium_app(url: str) -> list[str]:
    return [
        binary("chromium", "chromium"),
        "--headless=new",
        "--no-sandbox",  # root in CI; the van runs it as the unprivileged session user
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--user-data-dir={browser}",
        url,
    ]


def test_nothing_of_the_citizen_survives_next_with_real_chromium(tmp_path: Path, site: Site) -> None:
    token = "kc-" + secrets.token_hex(8)
    profile = profile_with(tmp_path, chromium_app(site.url), workspace="tmpfs")
    daemon = start_daemon(tmp_path, "--profile", str(profile), runtime=short_runtime(tmp_path))
    try:
        workspace = Path(daemon.open_session()["workspace"])
        assert is_mountpoint(workspace), "as root, the profile's workspace = tmpfs must be a tmpfs of its own"
        assert site.stored.wait(60), f"Chromium never stored the canary; log:\n{daemon.log.read_text()}"
        assert site.reports[0] == {"cookie": "", "ls": "", "idb": ""}
        site_canary = site.canary
        write_canaries(workspace, token)
        assert find(token, daemon.runtime), "the search must find the canary before the wipe"
        time.sleep(1.0)  # let Chromium write its storage to disk
        assert find(site_canary, workspace / "browser"), "Chromium's profile must hold the site's canary"

        site.reported.clear()
        daemon.ctl("next")
        assert site.reported.wait(60), "the next citizen's Chromium never loaded the page"
        assert site.reports[-1] == {"cookie": "", "ls": "", "idb": ""}, "the next citizen saw the previous one's data"
        assert not workspace.exists()
        for needle in (token, site_canary):
            assert find(needle, daemon.runtime, daemon.state, daemon.log) == []
        assert str(workspace) + "/" not in daemon.log.read_text(), "a path inside the workspace reached the log"
        receipts = json.loads(daemon.ctl("--json", "receipts").stdout)
        assert receipts[0]["verified"] and receipts[0]["reason"] == "next" and receipts[0]["scans"] == 1
        assert {h["name"] for h in receipts[0]["handlers"] if h["ok"]} >= {"app", "browser", "workspace"}
    finally:
        daemon.ctl("end-of-day", check=False)
        daemon.stop()


# ----------------------------------------------------------------------------------------------- crashes
STAGES = [None, "journal", "app", "layout", "handlers", "workspace", "verified"]


@pytest.mark.parametrize("stage", STAGES, ids=[s or "mid-session" for s in STAGES])
def test_a_crash_at_any_step_is_finished_before_ready(tmp_path: Path, stage: str | None) -> None:
    token = "kc-" + secrets.token_hex(8)
    app = ["sh", "-c", f'echo {token} > "$HOME/typed.txt"; exec sleep 600']
    profile = profile_with(tmp_path, app, workspace="auto")  # tmpfs where kioskd may mount, else a directory
    env = {"KIOSKD_FAULT_WIPE": stage} if stage else {}
    first = start_daemon(tmp_path, "--profile", str(profile), env=env, name="first")
    try:
        session = first.open_session()
        workspace = Path(session["workspace"])
        write_canaries(workspace, token)
        _wait(lambda: (workspace / "home" / "typed.txt").exists())
        if stage is None:
            first.proc.kill()  # a crash in the middle of a session
        else:
            first.ctl("next", check=False)  # the daemon kills itself right after `stage`
        assert first.proc.wait(30) != 0
    finally:
        first.kill()
    assert find(token, tmp_path / "run") or stage in ("workspace", "verified"), "the crash left something to wipe"

    second = start_daemon(tmp_path, "--profile", str(profile), name="second")
    try:
        second.wait_for("READY=1")
        # READY=1 is sent only after the recovery wipe: everything must already be gone
        assert find(token, tmp_path / "run", tmp_path / "state") == []
        assert not workspace.exists()
        assert not list((tmp_path / "state" / "wipe-journal").iterdir())
        assert _session_processes(session["id"]) == []
        receipts = json.loads(second.ctl("--json", "receipts").stdout)
        assert receipts[0]["session"] == session["id"] and receipts[0]["verified"]
        assert second.status()["station"]["state"] == "ready"  # type: ignore[index]
    finally:
        second.stop()


def _session_processes(session_id: str) -> list[int]:
    from kioskd.session.app import session_processes

    return session_processes(session_id)


def _wait(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# ----------------------------------------------------------------------------------------------- failures
def test_a_failing_handler_blocks_new_sessions_until_retry(tmp_path: Path) -> None:
    daemon: Daemon = start_daemon(tmp_path)
    try:
        daemon.open_session()
        daemon.ctl("sim", "printer", "stuck")
        failed = daemon.ctl("next", check=False)
        assert failed.returncode == 1 and "Effacement incomplet (print_jobs)" in failed.stderr
        blocked = daemon.ctl("next", check=False)
        assert blocked.returncode == 1 and "Effacement en cours" in blocked.stderr
        status = daemon.status()
        assert status["station"]["state"] == "wiping"  # type: ignore[index]
        assert any(n["key"] == "wipe.failed" for n in status["notices"])  # type: ignore[union-attr]
        assert daemon.ctl("wipe", "--retry", check=False).returncode == 1
        daemon.ctl("sim", "printer", "unstuck")
        daemon.ctl("wipe", "--retry")
        assert daemon.status()["station"]["state"] == "ready"  # type: ignore[index]
        daemon.ctl("next")
        assert daemon.status()["station"]["state"] == "in_session"  # type: ignore[index]
    finally:
        daemon.stop()
