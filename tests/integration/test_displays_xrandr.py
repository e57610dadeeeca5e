"""The xrandr backend on a private Xorg with video-dummy: mirror, privacy curtain, scaling fallback, hotplug, power,
clipboard; checked with xrandr's own view and with screenshots of the framebuffer (``xwd -root``)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageChops

from drivers.display.xrandr import XrandrDisplays, XrandrOptions, render_curtain
from kioskd.clock import RealClock
from kioskd.hal import DriverContext, OutputConnected
from tests.integration import require
from tests.integration.power_services import Recorder, wait_until
from tests.integration.xorg_service import Pattern, XServer, running_xorg

pytestmark = pytest.mark.integration

LARGEST = (2048, 1536)  # the largest of video-dummy's built-in modes, which every connected output offers


@pytest.fixture
def xorg(tmp_path: Path) -> Iterator[XServer]:
    with running_xorg(tmp_path) as server:
        yield server


class Station:
    """The backend under test with its events, started on the private server."""

    def __init__(self, xorg: XServer, tmp_path: Path, **options: Any) -> None:
        self.events = Recorder()
        self.options = {"display": xorg.display, "agent": "DUMMY0", "citizen": "DUMMY1", **options}
        ctx = DriverContext(
            kind="displays",
            driver="xrandr",
            options=self.options,
            clock=RealClock(),
            emit=self.events,
            runtime_dir=tmp_path,
            source="test-profile.toml",
        )
        self.displays = XrandrDisplays(ctx)


@pytest.fixture
async def station(xorg: XServer, tmp_path: Path) -> AsyncIterator[list[Station]]:
    started: list[Station] = []
    yield started
    for one in started:
        await one.displays.close()


async def start(xorg: XServer, tmp_path: Path, started: list[Station], **options: Any) -> Station:
    one = Station(xorg, tmp_path, **options)
    started.append(one)
    await one.displays.start()
    await one.displays.set_power(True)
    await one.displays.set_mirror(True)
    return one


def identical(a: Any, b: Any) -> bool:
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def curtain_picture(size: tuple[int, int]) -> Any:
    defaults = XrandrOptions()
    return render_curtain(size[0], size[1], defaults.curtain_text, defaults.curtain_font)


async def test_mirror_shows_the_agents_picture_on_both_screens_at_the_largest_common_mode(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1", "1280x800")  # plugged in another mode: mirroring must change it
    one = await start(xorg, tmp_path, station)
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, 0, 0)}
    pattern = Pattern(xorg, *LARGEST)
    try:
        shot = xorg.screenshot()
        agent, citizen = xorg.crop(shot, "DUMMY0"), xorg.crop(shot, "DUMMY1")
        assert pattern.colours(agent) == list(Pattern.COLOURS)
        assert identical(agent, citizen)
    finally:
        pattern.close()
    state = one.displays.state
    assert (state.layout, state.mirrored, state.powered, state.detail) == ("mirror", True, True, "")
    assert [(o.name, o.role, o.connected, o.width, o.height, o.x) for o in state.outputs] == [
        ("DUMMY0", "agent", True, *LARGEST, 0),
        ("DUMMY1", "citizen", True, *LARGEST, 0),
    ]


async def test_curtain_hides_the_agents_picture_from_the_citizen_only_and_a_second_press_restores_the_mirror(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")
    one = await start(xorg, tmp_path, station)
    pattern = Pattern(xorg, *LARGEST)
    try:
        await one.displays.set_curtain(True)
        assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, LARGEST[0], 0)}
        shot = xorg.screenshot()
        assert pattern.colours(xorg.crop(shot, "DUMMY0")) == list(Pattern.COLOURS)
        assert identical(xorg.crop(shot, "DUMMY1"), curtain_picture(LARGEST))
        state = one.displays.state
        assert (state.layout, state.curtain, state.mirrored) == ("curtain", True, False)
        assert [(o.role, o.x) for o in state.outputs] == [("agent", 0), ("citizen", LARGEST[0])]

        await one.displays.set_curtain(False)
        assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, 0, 0)}
        shot = xorg.screenshot()
        assert identical(xorg.crop(shot, "DUMMY0"), xorg.crop(shot, "DUMMY1"))
        assert pattern.colours(xorg.crop(shot, "DUMMY1")) == list(Pattern.COLOURS)
        assert (one.displays.state.layout, one.displays.state.curtain) == ("mirror", False)
    finally:
        pattern.close()


async def test_confidential_entry_shows_the_agents_picture_to_the_citizen_and_the_agent_its_own_curtain(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")
    one = await start(xorg, tmp_path, station)
    pattern = Pattern(xorg, *LARGEST)
    try:
        await one.displays.set_agent_curtain(True)
        assert xorg.monitors() == {"DUMMY1": (*LARGEST, 0, 0), "DUMMY0": (*LARGEST, LARGEST[0], 0)}
        shot = xorg.screenshot()
        assert pattern.colours(xorg.crop(shot, "DUMMY1")) == list(Pattern.COLOURS), "the citizen keeps the page"
        defaults = XrandrOptions()
        covered = render_curtain(*LARGEST, defaults.agent_curtain_text, defaults.curtain_font)
        assert identical(xorg.crop(shot, "DUMMY0"), covered)
        state = one.displays.state
        assert (state.layout, state.agent_curtain, state.curtain) == ("confidential", True, False)
        assert [(o.role, o.x) for o in state.outputs] == [("agent", LARGEST[0]), ("citizen", 0)]

        await one.displays.set_curtain(True)  # the privacy curtain wins: neither screen shows the picture
        assert one.displays.state.layout == "curtain" and not one.displays.state.agent_curtain
        await one.displays.set_curtain(False)
        assert one.displays.state.layout == "confidential"
        await one.displays.set_agent_curtain(False)
        shot = xorg.screenshot()
        assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, 0, 0)}
        assert pattern.colours(xorg.crop(shot, "DUMMY0")) == list(Pattern.COLOURS), "the agent's picture is back"
    finally:
        pattern.close()


async def test_curtain_stays_over_a_window_the_agents_apps_open_afterwards(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")
    one = await start(xorg, tmp_path, station)
    await one.displays.set_curtain(True)
    # a pop-up over the whole screen, citizen side included, opened while the curtain is up
    late = Pattern(xorg, 2 * LARGEST[0], LARGEST[1])
    try:
        await wait_until(
            lambda: identical(xorg.crop(xorg.screenshot(), "DUMMY1"), curtain_picture(LARGEST)),
            "the curtain back on top",
        )
    finally:
        late.close()


async def test_scaling_refused_by_the_driver_falls_back_to_the_largest_common_mode_and_says_so(
    xorg: XServer, tmp_path: Path, station: list[Station], caplog: pytest.LogCaptureFixture
) -> None:
    xorg.plug("DUMMY1")
    xorg.add_wide_mode("DUMMY0")  # the agent's screen is wider than anything the citizen's offers
    caplog.set_level(logging.INFO, logger="drivers.display.xrandr")
    one = await start(xorg, tmp_path, station)
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, 0, 0)}
    assert "Transform:  1.000000 0.000000 0.000000" in xorg.xrandr("--verbose")  # no scaling left behind
    state = one.displays.state
    assert state.layout == "mirror"
    assert "no 2560x1440 mode" in state.detail and "mirror at 2048x1536" in state.detail
    assert any("scaled from 2560x1440" in r.getMessage() and "BadValue" in r.getMessage() for r in caplog.records)


async def test_a_mode_added_to_the_citizen_screen_is_picked_up_and_the_mirror_moves_to_it(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")
    xorg.add_wide_mode("DUMMY0")
    one = await start(xorg, tmp_path, station)
    assert xorg.monitors()["DUMMY1"] == (*LARGEST, 0, 0)
    xorg.add_wide_mode("DUMMY1")
    await wait_until(
        lambda: xorg.monitors() == {"DUMMY0": (2560, 1440, 0, 0), "DUMMY1": (2560, 1440, 0, 0)},
        "the mirror at the new common mode",
    )
    await wait_until(lambda: one.displays.state.detail == "", "the fallback note gone")


async def test_a_citizen_screen_plugged_in_later_is_mirrored_without_a_command(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    one = await start(xorg, tmp_path, station)
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0)}
    citizen = [o for o in one.displays.state.outputs if o.role == "citizen"]
    assert [(o.name, o.connected) for o in citizen] == [("DUMMY1", False)]
    mark = one.events.mark()

    xorg.plug("DUMMY1", "1280x800")  # lands beside the agent's screen, in another mode
    await wait_until(
        lambda: xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, 0, 0)}, "the mirror re-applied"
    )
    await wait_until(lambda: one.events.since(mark, OutputConnected) != [], "OutputConnected")
    assert one.events.since(mark, OutputConnected) == [OutputConnected("DUMMY1", "citizen")]
    await wait_until(lambda: one.displays.state.mirrored, "the state says mirrored")
    shot = xorg.screenshot()
    assert identical(xorg.crop(shot, "DUMMY0"), xorg.crop(shot, "DUMMY1"))


async def test_the_other_connected_screen_is_the_citizens_when_the_profile_names_none(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY3")
    one = await start(xorg, tmp_path, station, agent=None, citizen=None)
    assert [(o.name, o.role) for o in one.displays.state.outputs] == [("DUMMY0", "agent"), ("DUMMY3", "citizen")]
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY3": (*LARGEST, 0, 0)}


async def test_power_off_darkens_every_screen_and_power_on_brings_back_the_curtain_it_had(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")
    xorg.plug("DUMMY2", right_of="DUMMY1")  # a third screen: never lit by kioskd
    one = await start(xorg, tmp_path, station)
    assert set(xorg.monitors()) == {"DUMMY0", "DUMMY1"}
    await one.displays.set_curtain(True)
    await one.displays.set_power(False)
    assert xorg.monitors() == {}
    assert (one.displays.state.layout, one.displays.state.powered) == ("off", False)
    await one.displays.set_power(True)
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (*LARGEST, LARGEST[0], 0)}
    assert identical(xorg.crop(xorg.screenshot(), "DUMMY1"), curtain_picture(LARGEST))
    assert one.displays.state.layout == "curtain"


async def test_clear_clipboard_takes_both_selections_from_the_app_that_held_a_password(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xclip = require.binary("xclip", "xclip")
    one = await start(xorg, tmp_path, station)
    holders = [hold(xorg, xclip, selection, "motdepasse-du-citoyen") for selection in ("clipboard", "primary")]

    def paste(selection: str) -> str:
        done = subprocess.run(
            [xclip, "-o", "-selection", selection], env=xorg.env, capture_output=True, text=True, check=False
        )
        return done.stdout

    try:
        await wait_until(lambda: paste("clipboard") == "motdepasse-du-citoyen", "xclip holding the clipboard")
        await wait_until(lambda: paste("primary") == "motdepasse-du-citoyen", "xclip holding the primary")
        await one.displays.clear_clipboard()
        assert (paste("clipboard"), paste("primary")) == ("", "")
        await wait_until(lambda: all(h.poll() is not None for h in holders), "xclip giving up its selections")
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
                holder.wait()


def hold(xorg: XServer, xclip: str, selection: str, text: str) -> subprocess.Popen[str]:
    """An app holding ``text`` in a selection: xclip serves it until another client takes the selection."""
    holder = subprocess.Popen(
        [xclip, "-quiet", "-i", "-selection", selection], env=xorg.env, stdin=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None
    holder.stdin.write(text)
    holder.stdin.close()
    return holder


async def test_before_the_first_command_the_screens_are_only_read_never_rearranged(
    xorg: XServer, tmp_path: Path, station: list[Station]
) -> None:
    xorg.plug("DUMMY1")  # beside the agent's screen, as the session left it
    one = Station(xorg, tmp_path)
    station.append(one)
    await one.displays.start()
    assert xorg.monitors() == {"DUMMY0": (*LARGEST, 0, 0), "DUMMY1": (1920, 1080, LARGEST[0], 0)}
    state = one.displays.state
    assert (state.layout, state.powered, state.mirrored) == ("extended", True, False)
    assert [(o.role, o.x) for o in state.outputs] == [("agent", 0), ("citizen", LARGEST[0])]
