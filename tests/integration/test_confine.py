"""The session app's launcher (``kioskd/session/confine.py``) on its own: confined as root, it leaves the PC read-only
and its /tmp private; without the right to mount (a laptop) it says so and runs the app anyway; a failure once the
namespace exists starts nothing; and ``SessionApp`` reports each case."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kioskd.clock import RealClock
from kioskd.session.app import LAUNCHER, AppUser, SessionApp
from kioskd.session.workspace import create

NOBODY = pwd.getpwnam("nobody")


def _launch(
    spec: dict[str, object], command: list[str], may_mount: bool = True, env: dict[str, str] | None = None
) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    spec = {"status_fd": write_end, **spec}
    # no right to mount: CAP_SYS_ADMIN out of the bounding set (the interpreter under /root stays readable)
    prefix = [] if may_mount else ["setpriv", "--bounding-set=-sys_admin", "--"]
    process = subprocess.Popen(
        [*prefix, sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--", *command],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    os.close(write_end)
    with os.fdopen(read_end) as status:
        said = status.read()
    code = process.wait(30)
    return code, said


def _shared(tmp_path: Path) -> Path:
    """A folder every user reaches (pytest's own tmp root is 0700 root)."""
    os.chmod(tmp_path, 0o755)
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    return folder


def test_confined_the_pc_is_read_only_and_tmp_is_private(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "the launcher confines as root (or with CAP_SYS_ADMIN): run the tests as root"
    ws = _shared(tmp_path)
    probe = (
        f"touch /tmp/kiosk-probe && echo tmp > {ws}/out; "
        f"touch /etc/kiosk-probe 2>/dev/null || echo etc-refused >> {ws}/out; "
        f"touch {tmp_path}/kiosk-probe 2>/dev/null || echo host-tmp-refused >> {ws}/out"
    )
    spec = {"workspace": str(ws), "size": "16m", "cwd": str(ws), "uid": NOBODY.pw_uid, "gid": NOBODY.pw_gid}
    code, said = _launch(spec, ["sh", "-c", probe])
    assert (code, said) == (0, "confined\n")
    assert (ws / "out").read_text().split() == ["tmp", "etc-refused", "host-tmp-refused"]
    assert not Path("/tmp/kiosk-probe").exists(), "the app's /tmp is the PC's"  # noqa: S108


def test_the_app_reaches_its_own_display_socket_and_no_other_x_server(tmp_path: Path) -> None:
    """Two X sockets on the PC (the station's and, say, a test's or a second seat's): the app sees and reaches the one
    its DISPLAY names, alone in a read-only /tmp/.X11-unix of its own."""
    assert os.geteuid() == 0, "run the tests as root"
    ws = _shared(tmp_path)
    folder = Path("/tmp/.X11-unix")  # noqa: S108
    folder.mkdir(mode=0o1777, exist_ok=True)
    mine, other = 4200 + os.getpid() % 1000 * 2, 4201 + os.getpid() % 1000 * 2
    servers = []
    for number in (mine, other):
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(folder / f"X{number}"))
        os.chmod(folder / f"X{number}", 0o777)
        server.listen(4)
        servers.append(server)
    probe = (
        "import os, socket, sys\n"
        f"out = open({str(ws / 'out')!r}, 'w')\n"
        "print(' '.join(sorted(os.listdir('/tmp/.X11-unix'))), file=out)\n"
        f"for n in ({mine}, {other}):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(f'/tmp/.X11-unix/X{n}'); print('reached', n, file=out)\n"
        "    except OSError as e:\n"
        "        print('refused', n, file=out)\n"
        "try:\n"
        "    open('/tmp/.X11-unix/planted', 'w'); print('planted', file=out)\n"
        "except OSError:\n"
        "    print('read-only', file=out)\n"
    )
    spec = {"workspace": str(ws), "size": "16m", "cwd": str(ws), "uid": NOBODY.pw_uid, "gid": NOBODY.pw_gid}
    try:
        code, said = _launch(spec, ["/usr/bin/python3", "-I", "-c", probe], env={"DISPLAY": f":{mine}.0"})
    finally:
        for number, server in zip((mine, other), servers, strict=True):
            server.close()
            (folder / f"X{number}").unlink()
    assert (code, said) == (0, "confined\n")
    assert (ws / "out").read_text().splitlines() == [f"X{mine}", f"reached {mine}", f"refused {other}", "read-only"]


@pytest.mark.parametrize(
    ("display", "path"),
    [(":0", "X0"), (":1.0", "X1"), ("unix:3", "X3"), ("localhost:0", None), ("", None), (":x", None)],
)
def test_display_socket_names_the_local_socket_only(display: str, path: str | None) -> None:
    from kioskd.session.confine import display_socket

    assert display_socket(display) == (None if path is None else f"/tmp/.X11-unix/{path}")  # noqa: S108


def test_without_the_right_to_mount_the_app_runs_unconfined_and_says_why(tmp_path: Path) -> None:
    ws = _shared(tmp_path)
    spec = {"workspace": str(ws), "size": "16m", "cwd": str(ws), "uid": None, "gid": None}
    code, said = _launch(spec, ["sh", "-c", f"echo ran > {ws}/ran"], may_mount=False)  # a laptop
    assert code == 0 and said == "unconfined unshare: Operation not permitted\n", said
    assert (ws / "ran").read_text() == "ran\n"


def test_a_failure_inside_the_namespace_starts_nothing(tmp_path: Path) -> None:
    spec = {"workspace": str(tmp_path / "gone"), "size": "16m", "cwd": str(tmp_path), "uid": None, "gid": None}
    code, said = _launch(spec, ["sh", "-c", f": > {tmp_path}/ran"])
    assert code == 126 and said.startswith("failed "), said
    assert not (tmp_path / "ran").exists()


async def test_session_app_reports_confined_and_refuses_an_app_that_cannot_start(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "run the tests as root"
    ws = await create(tmp_path / "ws", "directory", "10M", share_gid=NOBODY.pw_gid)
    user = AppUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    app = SessionApp(["sleep", "30"], grace=1, clock=RealClock(), user=user)
    await app.start("s1", ws)
    assert app.confined == "confined"
    await app.stop("s1")
    missing = SessionApp(["/nonexistent/kiosk-app"], grace=1, clock=RealClock(), user=user)
    with pytest.raises(OSError, match="failed exec"):
        await missing.start("s2", ws)


def test_deleting_as_the_app_user_never_follows_a_link_even_as_the_starting_point() -> None:
    from kioskd.session.workspace import _delete_as

    assert os.geteuid() == 0, "run the tests as root"
    base = Path(tempfile.mkdtemp(prefix="kd-", dir="/tmp"))  # the app user must reach it: pytest's root is 0700
    try:
        _delete_as_checks(base, _delete_as)
    finally:
        shutil.rmtree(base)


def _delete_as_checks(tmp_path: Path, _delete_as: Callable[[Path, tuple[int, int] | None], None]) -> None:
    os.chmod(tmp_path, 0o755)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o777)  # writable by the app user: only the link rule protects it
    os.chmod(victim, 0o777)
    (victim / "precious.txt").write_text("precious")
    os.chmod(victim / "precious.txt", 0o666)
    link = tmp_path / "downloads"
    link.symlink_to(victim)
    _delete_as(link, (NOBODY.pw_uid, NOBODY.pw_gid))
    assert (victim / "precious.txt").read_text() == "precious" and not link.is_symlink()
    folder = tmp_path / "browser"
    (folder / "Default").mkdir(parents=True)
    (folder / "Default" / "link").symlink_to(victim)
    (folder / "Default" / "Cookies").write_text("citizen")
    for path in (folder, folder / "Default", folder / "Default" / "Cookies"):
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid, follow_symlinks=False)
    os.chmod(folder / "Default", 0o700)  # closed to others, as Chromium makes it
    _delete_as(folder, (NOBODY.pw_uid, NOBODY.pw_gid))
    assert list(folder.iterdir()) == [] and (victim / "precious.txt").exists()
