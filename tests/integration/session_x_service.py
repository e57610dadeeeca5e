"""The session app's door (image-build/station/session-x) started as kioskd starts it, through kioskd's launcher,
on the display tests' private Xorg, with a page whose colour tells what it got: yellow
once shown, blue once "kiosk" is typed. Used by tests/integration/test_session_x.py and benchmarks/session_x.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from Xlib import XK, X, display
from Xlib.ext import xtest
from Xlib.protocol import event as xlib_event
from Xlib.protocol.display import Display as ProtocolDisplay

from tests.integration import require
from tests.integration.xorg_service import XServer

ROOT = Path(__file__).resolve().parents[2]
SESSION_X = ROOT / "image-build/station/session-x"
LAUNCHER = ROOT / "kioskd/session/confine.py"
GEOMETRY = (400, 300, 0, 120)
YELLOW, BLUE = (255, 255, 0), (0, 0, 255)
PAGE = (
    "data:text/html,<body style='margin:0;height:100vh;background:rgb(255,255,0)'><script>var t='';"
    "onkeydown=function(e){t=(t+e.key).slice(-5);if(t=='kiosk')document.body.style.background='rgb(0,0,255)'}"
    "</script></body>"
)
# The station's server turns MIT-SHM off (xorg-kioskd.conf): Xephyr must then draw over the socket.
NO_SHM = 'Section "Extensions"\n    Option "MIT-SHM" "Disable"\nEndSection\n'


def forget_extension_events() -> None:
    """python-xlib keeps the extensions' event codes in one dict shared by every connection of the process; a server
    without MIT-SHM numbers them differently from the other tests' servers, and a later connection then breaks on
    the stale entries ("'type' object does not support item assignment"). Called before and after this server."""
    ProtocolDisplay.event_classes = xlib_event.event_class.copy()


@dataclass
class Session:
    process: subprocess.Popen[bytes]
    workspace: Path


def start_session(xorg: XServer, tmp_path: Path, nested: bool = True) -> Session:
    """session-x with the page, nested (as the virtual van's profile) or straight on ``xorg``, started through
    kioskd's own launcher (kioskd/session/confine.py: the PC read-only, a private /tmp whose /tmp/.X11-unix holds the
    display's socket alone, read-only) as root, in a workspace under ``tmp_path``."""
    require.binary("Xephyr", "xserver-xephyr")
    chromium = require.binary("chromium", "chromium")
    require.binary("xauth", "xauth")
    width, height, x, y = GEOMETRY
    # a short path (Chromium's singleton socket lives under TMPDIR), removed with the session (stop_session)
    workspace = Path(tempfile.mkdtemp(prefix="kx-ws-", dir="/tmp"))
    (workspace / "tmp").mkdir()
    read_end, write_end = os.pipe()
    spec = {"status_fd": write_end, "workspace": str(workspace), "size": "64M", "cwd": str(workspace), "uid": None}
    command = [
        sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--",
        str(SESSION_X), *(["--nested", f"{width}x{height}+{x}+{y}"] if nested else []),
        chromium, "--no-sandbox", "--no-first-run", "--disable-gpu", "--disable-sync", "--noerrdialogs",
        f"--user-data-dir={workspace}/browser", f"--window-position={0 if nested else x},{0 if nested else y}",
        f"--window-size={width},{height}", f"--app={PAGE}",
    ]  # fmt: skip
    # KIOSKD_X_COOKIE: the station's cookie file (this server has no access control); TMPDIR: the session's, as kioskd
    env = {
        **xorg.env,
        "KIOSKD_X_COOKIE": str(tmp_path / "no-cookie"),
        "TMPDIR": str(workspace / "tmp"),
        "HOME": str(workspace),
    }
    log = (tmp_path / "session.log").open("wb")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_end,)
    )
    os.close(write_end)
    with os.fdopen(read_end) as status:
        said = status.read().strip()
    session = Session(process, workspace)
    if said != "confined":
        stop_session(session)
        raise AssertionError(f"kioskd's launcher said {said!r} (root is needed to confine)")
    return session


def stop_session(session: Session) -> None:
    """The session's process group ended (SIGTERM, then SIGKILL), its workspace removed."""
    process = session.process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    shutil.rmtree(session.workspace, ignore_errors=True)


def app_window(connection: display.Display) -> Any:
    """The mapped top-level window of the app's size (Xephyr's, or the app's own when not nested), or None."""
    for window in connection.screen().root.query_tree().children:
        try:
            attrs, geometry = window.get_attributes(), window.get_geometry()
        except Exception:  # a window may go between the listing and the question
            continue
        if attrs.map_state == X.IsViewable and (geometry.width, geometry.height) == GEOMETRY[:2]:
            return window
    return None


def centre(shot: Image.Image) -> tuple[int, int, int]:
    width, height, x, y = GEOMETRY
    pixel = shot.getpixel((x + width // 2, y + height // 2))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def wait_colour(
    xorg: XServer, colour: tuple[int, int, int], timeout: float, what: str, log: Path, period: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = centre(xorg.screenshot())
        if seen == colour:
            return
        time.sleep(period)
    raise AssertionError(f"{what}: the nested window's centre is {seen}, not {colour}\n{log.read_text()[-2000:]}")


def type_keys(connection: display.Display, window: Any, text: str) -> None:
    """``text`` typed through XTEST on the station's server into ``window`` (given the keyboard focus first)."""
    window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
    connection.sync()
    for letter in text:
        code = connection.keysym_to_keycode(XK.string_to_keysym(letter))
        xtest.fake_input(connection, X.KeyPress, code)
        xtest.fake_input(connection, X.KeyRelease, code)
        connection.sync()
        time.sleep(0.05)
