"""The session app's door, image-build/station/session-x, with ``--nested`` as the virtual van's profile uses it: the
real Xephyr and the real Chromium on the display tests' private Xorg (MIT-SHM off, as xorg-kioskd.conf has it),
in a mount namespace with a /tmp of its own as kioskd gives every session.

What it proves: the nested server's window lands where the profile says; Chromium in it shows its page although
the outer server's outputs change all through its start (the layout changes that left a trusted Chromium on the
station's X white for good, found in the virtual van); keys typed on the outer server arrive as typed ("kiosk" lights
the page: an untrusted Chromium read it "xsd;x"); the nested server goes with the app. What it does not: the
station's own cookies and uids (the virtual van does that). XTEST stays on in this server to type: the station's
turns it off, and the van types with qemu's keyboards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from Xlib import XK, X, display
from Xlib.ext import xtest

from tests.integration import require
from tests.integration.xorg_service import XServer, running_xorg

pytestmark = pytest.mark.integration

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


@pytest.fixture
def xorg(tmp_path: Path) -> Iterator[XServer]:
    with running_xorg(tmp_path, NO_SHM) as server:
        yield server


def start_session(xorg: XServer, tmp_path: Path) -> subprocess.Popen[bytes]:
    require.binary("Xephyr", "xserver-xephyr")
    chromium = require.binary("chromium", "chromium")
    require.binary("unshare", "util-linux")
    require.binary("xauth", "xauth")
    width, height, x, y = GEOMETRY
    # /tmp of its own (the nested server's socket and lock, the browser's profile), as in a session's namespace
    script = 'mount -t tmpfs -o mode=1777 session-tmp /tmp && exec "$@"'
    command = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
        str(SESSION_X), "--nested", f"{width}x{height}+{x}+{y}",
        chromium, "--no-sandbox", "--no-first-run", "--disable-gpu", "--disable-sync", "--noerrdialogs",
        "--user-data-dir=/tmp/browser", "--window-position=0,0", f"--window-size={width},{height}", f"--app={PAGE}",
    ]  # fmt: skip
    env = {**xorg.env, "KIOSKD_X_COOKIE": str(tmp_path / "no-cookie"), "TMPDIR": "/tmp"}  # noqa: S108 - the namespace's own tmpfs
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


def nested_window(connection: display.Display) -> Any:
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


def wait_colour(xorg: XServer, colour: tuple[int, int, int], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = centre(xorg.screenshot())
        if seen == colour:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: the nested window's centre is {seen}, not {colour}\n{log.read_text()[-2000:]}")


def test_the_app_in_its_nested_server_shows_its_page_through_layout_changes_and_gets_the_keys_as_typed(
    xorg: XServer, tmp_path: Path
) -> None:
    xorg.plug("DUMMY1", "1024x768")
    connection = display.Display(xorg.display)
    process = start_session(xorg, tmp_path)
    log = tmp_path / "session.log"
    try:
        deadline, window, flips = time.monotonic() + 60, None, 0
        while window is None and time.monotonic() < deadline:
            assert process.poll() is None, f"session-x ended: {log.read_text()[-2000:]}"
            window = nested_window(connection)
            time.sleep(0.2)
        assert window is not None, f"no nested window of {GEOMETRY[:2]}: {log.read_text()[-2000:]}"
        translated = window.translate_coords(connection.screen().root, 0, 0)
        assert (-translated.x, -translated.y) == GEOMETRY[2:], "the nested window is not where the profile puts it"
        # the layout changes all through Chromium's start: the citizen's screen off, on, beside, mirrored
        for flips in range(12):
            if flips % 2:
                where = "--right-of" if flips % 4 == 1 else "--same-as"
                xorg.xrandr("--output", "DUMMY1", "--mode", "1024x768", where, "DUMMY0")
            else:
                xorg.xrandr("--output", "DUMMY1", "--off")
            time.sleep(0.5)
        wait_colour(xorg, YELLOW, 120, "the page after the layout changes", log)

        window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
        connection.sync()
        for letter in "kiosk":
            code = connection.keysym_to_keycode(XK.string_to_keysym(letter))
            xtest.fake_input(connection, X.KeyPress, code)
            xtest.fake_input(connection, X.KeyRelease, code)
            connection.sync()
            time.sleep(0.05)
        wait_colour(xorg, BLUE, 30, 'the canary "kiosk" typed on the station\'s server', log)
    finally:
        stop_session(process)
        connection.close()
    # the app and its nested server are gone together: no window of the session left on the station's screen
    again = display.Display(xorg.display)
    try:
        assert nested_window(again) is None, "the nested server outlived the session app"
    finally:
        again.close()
