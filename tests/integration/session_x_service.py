"""The session app's door (image-build/station/session-x) started as kioskd starts it, on the display tests' private
Xorg, in a mount namespace with a /tmp of its own (a session's), with a page whose colour tells what it got: yellow
once shown, blue once "kiosk" is typed. Used by tests/integration/test_session_x.py and benchmarks/session_x.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from PIL import Image
from Xlib import XK, X, display
from Xlib.ext import xtest

from tests.integration import require
from tests.integration.xorg_service import XServer

ROOT = Path(__file__).resolve().parents[2]
SESSION_X = ROOT / "image-build/station/session-x"
GEOMETRY = (400, 300, 0, 120)
YELLOW, BLUE = (255, 255, 0), (0, 0, 255)
PAGE = (
    "data:text/html,<body style='margin:0;height:100vh;background:rgb(255,255,0)'><script>var t='';"
    "onkeydown=function(e){t=(t+e.key).slice(-5);if(t=='kiosk')document.body.style.background='rgb(0,0,255)'}"
    "</script></body>"
)
# The station's server turns MIT-SHM off (xorg-kioskd.conf): Xephyr must then draw over the socket.
NO_SHM = 'Section "Extensions"\n    Option "MIT-SHM" "Disable"\nEndSection\n'


def start_session(xorg: XServer, tmp_path: Path, nested: bool = True) -> subprocess.Popen[bytes]:
    """session-x with the page, nested (as the virtual van's profile) or straight on ``xorg``."""
    require.binary("Xephyr", "xserver-xephyr")
    chromium = require.binary("chromium", "chromium")
    require.binary("unshare", "util-linux")
    require.binary("xauth", "xauth")
    width, height, x, y = GEOMETRY
    # /tmp of its own (the nested server's socket and lock, the browser's profile), as in a session's namespace
    script = 'mount -t tmpfs -o mode=1777 session-tmp /tmp && exec "$@"'
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
        str(SESSION_X), *(["--nested", f"{width}x{height}+{x}+{y}"] if nested else []),
        chromium, "--no-sandbox", "--no-first-run", "--disable-gpu", "--disable-sync", "--noerrdialogs",
        "--user-data-dir=/tmp/browser", f"--window-position={0 if nested else x},{0 if nested else y}",
        f"--window-size={width},{height}", f"--app={PAGE}",
    ]  # fmt: skip
    # KIOSKD_X_COOKIE: the station's cookie file; this server has no access control. TMPDIR: the namespace's tmpfs.
    env = {**xorg.env, "KIOSKD_X_COOKIE": str(tmp_path / "no-cookie"), "TMPDIR": "/tmp"}  # noqa: S108
    log = (tmp_path / "session.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_session(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
