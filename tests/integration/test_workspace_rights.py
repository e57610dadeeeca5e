"""The session's workspace as kioskd.service really runs: an unprivileged ``kiosk`` user holding CAP_SYS_ADMIN as an
ambient capability gets the per-citizen tmpfs (capped in size, dropped whole by the wipe's unmount), and the same
user without the capability falls back to the private directory. The child runs under ``setpriv``, as systemd would
start it, in a mount namespace of its own so that nothing it mounts outlives it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.require import binary

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import asyncio, json, os, sys
from pathlib import Path
from kioskd.session import workspace

async def main():
    root = Path(sys.argv[1]) / "ws"
    ws = await workspace.create(root, "auto", "4M")
    kind, mounted = ws.kind, workspace.is_mountpoint(root)
    full = None
    if kind == "tmpfs":
        try:
            (ws.downloads / "big").write_bytes(b"x" * 8 * 1024 * 1024)
        except OSError as exc:
            full = exc.strerror
        (ws.downloads / "big").unlink()
    (ws.downloads / "left").write_text("citizen")
    await workspace.remove(root)
    print(json.dumps({"can_mount": workspace.can_mount(), "kind": kind, "mounted": mounted, "full": full,
                      "gone": not root.exists()}))

asyncio.run(main())
"""


def run_as_nobody(*caps: str) -> dict[str, object]:
    assert os.geteuid() == 0, "this test switches users: run the tests as root (CI does)"
    setpriv, unshare = binary("setpriv", "util-linux"), binary("unshare", "util-linux")
    nobody = pwd.getpwnam("nobody")
    place = Path(tempfile.mkdtemp(prefix="kioskd-ws-"))  # pytest's own tmp is 0700 root: nobody cannot reach it
    os.chown(place, nobody.pw_uid, nobody.pw_gid)
    grant = [f"--inh-caps=+{','.join(caps)}", f"--ambient-caps=+{','.join(caps)}"] if caps else []
    command = [
        unshare, "--mount", "--propagation", "private", setpriv, f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}", "--clear-groups", *grant, sys.executable, "-c", CHILD, str(place),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    finally:
        shutil.rmtree(place, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_the_units_user_with_cap_sys_admin_gets_a_capped_tmpfs() -> None:
    answer = run_as_nobody("sys_admin")
    assert answer["can_mount"] is True and answer["kind"] == "tmpfs" and answer["mounted"] is True, answer
    assert answer["full"] == "No space left on device", answer  # a citizen cannot fill the PC's /run
    assert answer["gone"] is True, answer


def test_without_the_capability_it_falls_back_to_a_private_directory() -> None:
    answer = run_as_nobody()
    assert answer["can_mount"] is False and answer["kind"] == "directory" and answer["mounted"] is False, answer
    assert answer["gone"] is True, answer
