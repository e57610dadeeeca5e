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

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import display

from tests.integration.session_x_service import (
    BLUE,
    GEOMETRY,
    NO_SHM,
    YELLOW,
    app_window,
    forget_extension_events,
    start_session,
    stop_session,
    type_keys,
    wait_colour,
)  # fmt: skip
from tests.integration.xorg_service import XServer, running_xorg

pytestmark = pytest.mark.integration


@pytest.fixture
def xorg(tmp_path: Path) -> Iterator[XServer]:
    forget_extension_events()
    try:
        with running_xorg(tmp_path, NO_SHM) as server:
            yield server
    finally:
        forget_extension_events()


def test_the_app_in_its_nested_server_shows_its_page_through_layout_changes_and_gets_the_keys_as_typed(
    xorg: XServer, tmp_path: Path
) -> None:
    xorg.plug("DUMMY1", "1024x768")
    connection = display.Display(xorg.display)
    session = start_session(xorg, tmp_path)
    log = tmp_path / "session.log"
    try:
        deadline, window, flips = time.monotonic() + 60, None, 0
        while window is None and time.monotonic() < deadline:
            assert session.process.poll() is None, f"session-x ended: {log.read_text()[-2000:]}"
            window = app_window(connection)
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

        type_keys(connection, window, "kiosk")
        wait_colour(xorg, BLUE, 30, 'the canary "kiosk" typed on the station\'s server', log)
    finally:
        stop_session(session)
        connection.close()
    # the app and its nested server are gone together: no window of the session left on the station's screen
    again = display.Display(xorg.display)
    try:
        assert app_window(again) is None, "the nested server outlived the session app"
    finally:
        again.close()
