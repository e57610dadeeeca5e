"""How the xrandr backend lays the screens out, worked out without an X server (the cases video-dummy cannot show:
an unplugged citizen screen, outputs without a mode in common), and the sim van's layout kept in step."""

from __future__ import annotations

from drivers.display.xrandr import Mode, Seen, plan_layout, roles
from tests.conftest import Rig

FHD, WXGA, QHD = Mode(0x41, 1920, 1080), Mode(0x42, 1280, 800), Mode(0x43, 2560, 1440)


def screen(name: str, *modes: Mode, connected: bool = True, lit: bool = False, primary: bool = False) -> Seen:
    return Seen(name, connected, modes, primary=primary, lit=lit)


def test_unplugged_citizen_screen_leaves_the_agent_alone_and_says_so() -> None:
    outputs = [screen("eDP-1", FHD), screen("HDMI-1", FHD, connected=False, lit=True)]
    plan = plan_layout(outputs, "eDP-1", "HDMI-1", "mirror", scaling_refused=False)
    assert plan.layout == "mirror" and plan.detail == "citizen output not connected"
    assert plan.args[:2] == ("--output", "eDP-1")
    assert plan.args[-3:] == ("--output", "HDMI-1", "--off")  # its CRTC is freed for the next plug


def test_a_third_screen_is_turned_off_in_every_layout() -> None:
    outputs = [screen("A", FHD), screen("B", FHD), screen("C", FHD, lit=True)]
    for want in ("mirror", "curtain", "extended", "off"):
        args = plan_layout(outputs, "A", "B", want, scaling_refused=False).args
        assert args[-3:] == ("--output", "C", "--off"), want


def test_without_a_mode_in_common_the_screens_go_side_by_side_once_scaling_is_refused() -> None:
    outputs = [screen("A", QHD), screen("B", WXGA)]
    first = plan_layout(outputs, "A", "B", "mirror", scaling_refused=False)
    assert first.scaled and "--scale-from" in first.args and first.fallback is not None
    assert first.fallback.layout == "extended" and "no mode in common" in first.fallback.detail
    again = plan_layout(outputs, "A", "B", "mirror", scaling_refused=True)
    assert again.layout == "extended" and "--scale-from" not in again.args


def test_curtain_goes_right_of_the_agent_screen_in_the_mirrors_modes() -> None:
    outputs = [screen("A", QHD, FHD), screen("B", FHD, WXGA)]
    plan = plan_layout(outputs, "A", "B", "curtain", scaling_refused=True)
    assert plan.curtain is not None and (plan.curtain.x, plan.curtain.width, plan.curtain.height) == (1920, 1920, 1080)
    assert plan.args.count(hex(FHD.id)) == 2


def test_the_primary_output_is_the_agents_and_the_other_connected_one_the_citizens() -> None:
    outputs = [screen("HDMI-1", FHD), screen("DP-1", FHD, connected=False), screen("eDP-1", FHD, primary=True)]
    assert roles(outputs, None, None) == ("eDP-1", "HDMI-1")
    assert roles(outputs, None, "eDP-1") == ("HDMI-1", "eDP-1")


async def test_sim_van_reports_the_layout_and_moves_the_citizen_screen_beside_for_the_curtain(rig: Rig) -> None:
    await rig.station.start()
    assert rig.station.state.displays.layout == "mirror"
    await rig.station.set_privacy(True)
    displays = rig.station.state.displays
    assert displays.layout == "curtain"
    assert [(o.role, o.x) for o in displays.outputs] == [("agent", 0), ("citizen", 1920)]
