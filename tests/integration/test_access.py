"""Access control of a running kioskd: the API socket is 0660 in the agents' group inside a 0750 runtime dir of that
group, so a process of another user cannot connect while a member of the group can; the loopback API refuses a
request without the panel token or with a wrong one. (The session app's user: tests/integration/test_app_user.py.)"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kioskd import messages
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


def _raw_get(port: int, path: str, host: bytes, headers: bytes = b"") -> tuple[int, dict[str, str]]:
    """One request written byte for byte (an HTTP library would refuse or fix most of these Host headers): the status
    and the JSON body's error."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + headers + b"Connection: close\r\n\r\n"
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body).get("error", {}) if body.startswith(b"{") else {}


# What a rebinding page or a hand-made request may send, and a loose parser takes for a local name.
MALFORMED_HOSTS = [
    b"[::1]evil.example",
    b"[::1]:1evil.example",
    b"localhost:99999",
    b"localhost:0",
    b"localhost:08765",
    b"user@localhost",
    b"localhost@evil.example",
    b"localhost:8765/x",
    b"127.0.0.1.",
    b"::1",
    b"[0:0:0:0:0:0:0:1]",
    b"l\xf3calhost",  # not ASCII (latin-1 on the wire)
    b"localhost\xc2\xa0",  # not ASCII (UTF-8 on the wire)
]


def _said_in_both_languages(error: dict[str, str], key: str) -> None:
    assert error.get("key") == key, error
    assert error["fr"] == messages.text(key, "fr") and error["en"] == messages.text(key, "en")


def test_a_malformed_host_is_refused_by_the_running_daemon_in_both_languages(daemon: Daemon) -> None:
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    token = (daemon.runtime / "panel-token").read_text().strip()
    auth = f"Authorization: Bearer {token}\r\n".encode()
    assert _raw_get(port, "/status", f"127.0.0.1:{port}".encode(), auth)[0] == 200
    assert _raw_get(port, "/status", b"[::1]", auth)[0] == 200
    for host in MALFORMED_HOSTS:
        status, error = _raw_get(port, "/status", host, auth)
        assert status in (400, 421), host  # 400: the HTTP parser itself refused it, before any route
        if status == 421:
            _said_in_both_languages(error, "api.refused.host")
    status, error = _raw_get(port, "/status", b"[::1]evil.example", auth)
    assert status == 421, "the host after the brackets counts"
    _said_in_both_languages(error, "api.refused.host")


def test_the_loopback_apis_refusals_and_a_missing_scan_say_why_in_both_languages(daemon: Daemon) -> None:
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    token = (daemon.runtime / "panel-token").read_text().strip()
    url = f"http://127.0.0.1:{port}"
    _said_in_both_languages(httpx.get(url + "/status").json()["error"], "api.refused.token")
    auth = {"Authorization": f"Bearer {token}"}
    cross = httpx.post(url + "/start", headers={**auth, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    _said_in_both_languages(cross.json()["error"], "api.refused.origin")
    daemon.open_session()
    missing = httpx.get(url + "/scans/scan-20261201-101500.pdf/thumbnail", headers=auth)
    assert missing.status_code == 404
    _said_in_both_languages(missing.json()["error"], "api.scan_not_found")
