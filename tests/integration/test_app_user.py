"""The session app as its own user (``station.app_user``; kiosk-citizen in the image, ``nobody`` here): it runs as
that user, writes its home and downloads, cannot read kioskd's state, token or socket, and its private folders
(closed to kioskd) are gone after the wipe, as are its processes."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon_process import short_runtime, start_daemon
from tests.integration.test_wipe import _wait, find, profile_with

APP_USER = "nobody"  # exists on every Debian system; the image has kiosk-citizen


def _as_app_user(*command: str) -> subprocess.CompletedProcess[str]:
    user = pwd.getpwnam(APP_USER)
    return subprocess.run(
        list(command), user=user.pw_uid, group=user.pw_gid, extra_groups=[], capture_output=True, text=True
    )


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("workspace", ["tmpfs", "directory"])
def test_the_app_runs_as_its_own_user_sees_nothing_of_kioskd_and_leaves_nothing(tmp_path: Path, workspace: str) -> None:
    assert os.geteuid() == 0, "this test starts the app as another user: run the tests as root (CI does)"
    canary = "APPUSER-" + os.urandom(6).hex()
    script = (
        # the shell reads its own mask with builtins: a forked grep would read it while dash blocks every signal
        # around that very fork (seen ~1 run in 10: an all-blocked mask that is dash's, not the app's)
        'id -u > "$HOME/uid"; while read -r k v; do case $k in SigBlk:) echo "$k $v";; esac; done '
        '< /proc/$$/status > "$HOME/sigblk"; '
        f'mkdir -m 700 "$HOME/.private" && echo {canary} > "$HOME/.private/secret"; '
        f'mkdir -m 700 "$XDG_DOWNLOAD_DIR/sub" && echo {canary} > "$XDG_DOWNLOAD_DIR/sub/avis.pdf"; '
        "exec sleep 600"
    )
    profile = profile_with(tmp_path, ["sh", "-c", script], workspace=workspace)
    profile.write_text(profile.read_text().replace("[station]\n", f'[station]\napp_user = "{APP_USER}"\n', 1))
    runtime = short_runtime(tmp_path)
    daemon = start_daemon(tmp_path, "--profile", str(profile), runtime=runtime)
    uid = pwd.getpwnam(APP_USER).pw_uid
    try:
        session = daemon.open_session()
        home = Path(session["workspace"]) / "home"
        _wait(lambda: (home / "uid").exists() and (home / ".private" / "secret").exists())
        assert (home / "uid").read_text().strip() == str(uid)
        # kioskd blocks SIGPIPE in all its threads (a library may reset its disposition); the app must not inherit it
        pipe_bit = 1 << (signal.SIGPIPE - 1)
        assert not int((home / "sigblk").read_text().split()[1], 16) & pipe_bit, "the app starts with SIGPIPE open"
        daemon_blocked = next(
            x for x in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines() if x.startswith("SigBlk")
        )
        assert int(daemon_blocked.split()[1], 16) & pipe_bit, "kioskd's main thread blocks SIGPIPE"
        assert _processes_of(uid), "the app runs as the app user"
        # what the app must not reach: kioskd's state, the panel token, the API socket, other sessions
        for target in (tmp_path / "state" / "kioskd.sqlite", runtime / "panel-token"):
            denied = _as_app_user("cat", str(target))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, target
        listing = _as_app_user("ls", str(runtime / "sessions"))
        assert listing.returncode != 0, "the app user must not list the sessions"
        connect = _as_app_user(
            "/usr/bin/python3",
            "-c",
            "import socket, sys\ntry:\n"
            f"    socket.socket(socket.AF_UNIX).connect({str(daemon.socket_path)!r})\n"
            "except PermissionError:\n    sys.exit(3)",
        )
        assert connect.returncode == 3, "connect() itself must be refused"
        assert find(canary, runtime), "the canary is in the workspace before the wipe"

        daemon.ctl("end-of-day")  # not "next": the next session's app would write the canary again
        assert find(canary, runtime, tmp_path / "state") == []
        assert _processes_of(uid) == [], "every process of the app user ends with the wipe"
        receipt = daemon.ctl("--json", "receipts", "--limit", "1").stdout
        assert '"verified": true' in receipt
    finally:
        daemon.kill()
        for pid in _processes_of(uid):
            os.kill(pid, 9)
