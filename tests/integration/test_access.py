"""Access control of a running kioskd: the API socket is 0660 in the agents' group inside a 0750 runtime dir of that
group, so a process of another user cannot connect while a member of the group can; the loopback API refuses a
request without the panel token or with a wrong one. (The session app's user: tests/integration/test_app_user.py.)"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import Daemon, short_runtime, start_daemon

AGENTS = "audio"  # a group every Debian system has, standing for kiosk-agent (not created on a test machine)
OUTSIDER = "nobody"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    assert os.geteuid() == 0, "these tests switch users: run them as root (CI does)"
    profile = tmp_path / "profile.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("port = 8765", f'port = 8765\nsocket_group = "{AGENTS}"'))
    d = start_daemon(tmp_path, "--profile", str(profile), runtime=short_runtime(tmp_path))
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()


def _connect_as(socket_path: Path, groups: list[int]) -> subprocess.CompletedProcess[str]:
    user = pwd.getpwnam(OUTSIDER)
    probe = (
        "import socket, sys\ntry:\n"
        f"    socket.socket(socket.AF_UNIX).connect({str(socket_path)!r})\n"
        "except PermissionError:\n    sys.exit(3)\nprint('connected')"
    )
    return subprocess.run(
        ["/usr/bin/python3", "-c", probe],  # the venv under /root is closed to that user
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=groups,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_only_the_agents_group_reaches_the_api_socket(daemon: Daemon) -> None:
    agents = grp.getgrnam(AGENTS).gr_gid
    sock = os.stat(daemon.socket_path)
    assert stat.S_IMODE(sock.st_mode) == 0o660 and sock.st_gid == agents
    runtime = os.stat(daemon.runtime)
    assert stat.S_IMODE(runtime.st_mode) == 0o750 and runtime.st_gid == agents
    outsider = _connect_as(daemon.socket_path, [])
    assert outsider.returncode == 3, "connect() itself must be refused"
    member = _connect_as(daemon.socket_path, [agents])
    assert member.returncode == 0 and "connected" in member.stdout, member.stderr
    state_dir = os.stat(daemon.state)
    assert stat.S_IMODE(state_dir.st_mode) == 0o700, "kioskd's state is its own"


def test_the_agents_group_reads_the_panels_address_but_nobody_else(daemon: Daemon) -> None:
    # `kioskctl panel` as the agents' desktop user (the station's X session opens the panel with it) reads both
    agents = grp.getgrnam(AGENTS).gr_gid
    for name in ("api.json", "panel-token"):
        info = os.stat(daemon.runtime / name)
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == agents, name


def test_the_loopback_api_needs_the_exact_panel_token(daemon: Daemon) -> None:
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    token = (daemon.runtime / "panel-token").read_text().strip()
    url = f"http://127.0.0.1:{port}/status"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {token[:-1]}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert httpx.post(f"http://127.0.0.1:{port}/start").status_code == 401, "commands too, not only reads"
    assert daemon.status()["station"]["state"] == "off"  # type: ignore[index]
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
