"""Handing the controls to the citizen on the simulated van: the citizen's devices, the agent's curtain and
devices, what ends a confidential entry, the wipe's restoring handler and the receipt's counts; and the matrix
arithmetic against xinput's own map-to-output."""

from __future__ import annotations

import pytest

from kioskd.errors import TransitionRefused, WipeError
from kioskd.hal import IDENTITY, Output, output_matrix
from kioskd.records.stats import month_of, render, summarize
from kioskd.records.store import Store
from tests.conftest import Rig, make_rig, sim_profile


def sides(rig: Rig) -> dict[str, bool]:
    return {d.name: d.enabled for d in rig.station.state.inputs.devices}


async def in_session(rig: Rig) -> None:
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.station.idle()


def xinput_map_to_output(screen: tuple[int, int], crtc: tuple[int, int, int, int]) -> list[float]:
    """xinput's ``set_transformation_matrix`` (xinput/src/transform.c) for RR_Rotate_0, as written there: the
    offset over the whole display's size in row 0/1 column 2, the CRTC's share on the diagonal."""
    width, height = screen
    offset_x, offset_y, screen_width, screen_height = crtc
    m = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    m[0 * 3 + 2] = 1.0 * offset_x / width
    m[1 * 3 + 2] = 1.0 * offset_y / height
    m[0 * 3 + 0] = 1.0 * screen_width / width
    m[1 * 3 + 1] = 1.0 * screen_height / height
    return m


@pytest.mark.parametrize(
    ("screen", "crtc", "layout"),
    [
        ((1920, 1080), (0, 0, 1920, 1080), "mirror"),
        ((3840, 1080), (1920, 0, 1920, 1080), "extended / curtain: the citizen right of the agent"),
        ((3200, 1080), (0, 0, 1280, 1024), "confidential: the citizen at the origin, the agent beside"),
        ((2560, 2160), (0, 1080, 1920, 1080), "a citizen screen below"),
    ],
)
def test_the_matrix_is_xinputs_map_to_output(
    screen: tuple[int, int], crtc: tuple[int, int, int, int], layout: str
) -> None:
    x, y, width, height = crtc
    ours = output_matrix(*screen, Output("HDMI-2", "citizen", True, width, height, x, y))
    assert list(ours) == pytest.approx(xinput_map_to_output(screen, crtc)), layout
    # a touch at the device's far corner lands at the output's far corner
    far = (ours[0] * 1 + ours[2], ours[4] * 1 + ours[5])
    assert (far[0] * screen[0], far[1] * screen[1]) == pytest.approx((x + width, y + height))


def test_an_output_off_maps_to_the_identity() -> None:
    assert output_matrix(1920, 1080, Output("HDMI-2", "citizen", False)) == IDENTITY


async def test_citizen_devices_are_disabled_by_default_and_handover_enables_and_maps_them(rig: Rig) -> None:
    await in_session(rig)
    assert sides(rig) == {
        "agent keyboard": True,
        "agent mouse": True,
        "citizen touch": False,
        "citizen keyboard": False,
    }
    assert await rig.sim("type", "citizen") == "citizen key ignored"
    state = await rig.station.set_handover(True)
    assert state.handover and state.handovers == 1
    assert sides(rig)["citizen touch"] and sides(rig)["citizen keyboard"] and sides(rig)["agent keyboard"]
    assert await rig.sim("type", "citizen") == "citizen key delivered"
    touch = next(d for d in rig.station.state.inputs.devices if d.name == "citizen touch")
    assert touch.mapped_to == "HDMI-2"
    assert touch.matrix == pytest.approx((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)), "mirror: the whole screen"
    await rig.station.set_handover(False)
    assert not sides(rig)["citizen touch"]
    assert await rig.sim("type", "citizen") == "citizen key ignored"


async def test_the_touchscreen_follows_the_citizen_output_in_every_layout(rig: Rig) -> None:
    await in_session(rig)
    await rig.station.set_handover(True)

    def touch_matrix() -> tuple[float, ...]:
        return next(d.matrix for d in rig.station.state.inputs.devices if d.name == "citizen touch")

    await rig.station.set_confidential(True)
    await rig.station.idle()
    assert rig.station.state.displays.layout == "confidential"
    assert touch_matrix() == pytest.approx((0.5, 0, 0, 0, 1, 0, 0, 0, 1)), "citizen at the origin of 3840x1080"
    await rig.station.set_confidential(False)
    await rig.station.idle()
    assert touch_matrix() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1)), "mirror"
    await rig.devices.displays.set_mirror(False)
    await rig.station.idle()
    assert rig.station.state.displays.layout == "extended"
    assert touch_matrix() == pytest.approx((0.5, 0, 0.5, 0, 1, 0, 0, 0, 1)), "citizen right of the agent"


async def test_confidential_entry_curtains_the_agent_and_disables_the_agents_devices_until_the_button(
    rig: Rig,
) -> None:
    await in_session(rig)
    session = rig.station.session
    state = await rig.station.set_confidential(True)
    assert state.confidential and state.confidential_entries == 1
    displays = rig.station.state.displays
    assert displays.agent_curtain and not displays.curtain and displays.layout == "confidential"
    assert sides(rig) == {
        "agent keyboard": False,
        "agent mouse": False,
        "citizen touch": True,
        "citizen keyboard": True,
    }
    assert await rig.sim("type", "agent") == "agent key ignored"
    # the agent's screen was curtained before the agent's devices went off and the citizen's came on
    order = [r.what for r in rig.history if (r.device, r.what) in (("displays", "set"), ("inputs", "enabled"))]
    curtain_at = next(i for i, r in enumerate(rig.history.select("displays", "set")) if "agent_curtain" in r.value)
    assert curtain_at >= 0 and order.index("set") < order.index("enabled")
    await rig.sim("press")  # the button's short press ends it: it does not call the next citizen
    assert rig.station.session is session and rig.station.mode == "in_session"
    assert not rig.station.state.handover.confidential
    assert not rig.station.state.displays.agent_curtain and rig.station.state.displays.layout == "mirror"
    assert sides(rig) == {
        "agent keyboard": True,
        "agent mouse": True,
        "citizen touch": False,
        "citizen keyboard": False,
    }
    await rig.sim("press")  # the next press is the next citizen again
    assert rig.station.session is not session


async def test_confidential_entry_ends_by_its_timeout(tmp_path: object) -> None:
    rig = await make_rig(
        tmp_path, sim_profile(station={"workspace": "directory"}, handover={"confidential_timeout": 60})
    )  # type: ignore[arg-type]
    try:
        await in_session(rig)
        await rig.station.set_confidential(True)
        await rig.run(59)
        assert rig.station.state.handover.confidential
        await rig.run(2)
        assert not rig.station.state.handover.confidential
        assert sides(rig)["agent keyboard"] and not sides(rig)["citizen keyboard"]
        assert not rig.station.state.displays.agent_curtain
        assert rig.station.state.handover.confidential_seconds == pytest.approx(60, abs=1)
    finally:
        await rig.station.close()
        for _, device in rig.devices.all():
            await device.close()


async def test_the_privacy_curtain_takes_the_controls_back_and_refuses_a_handover(rig: Rig) -> None:
    await in_session(rig)
    await rig.station.set_confidential(True)
    assert await rig.station.set_privacy(True)
    state = rig.station.state
    assert not state.handover.handover and not state.handover.confidential
    assert not state.displays.agent_curtain and state.displays.layout == "curtain"
    assert not sides(rig)["citizen touch"] and sides(rig)["agent mouse"]
    with pytest.raises(TransitionRefused) as refused:
        await rig.station.set_handover(True)
    assert refused.value.key == "refused.handover.curtain"
    with pytest.raises(TransitionRefused) as refused:
        await rig.station.set_confidential(True)
    assert refused.value.key == "refused.confidential.curtain"


async def test_handover_needs_a_citizen(rig: Rig) -> None:
    await rig.station.start()
    with pytest.raises(TransitionRefused) as refused:
        await rig.station.set_handover(True)
    assert refused.value.key == "refused.no_session"
    assert not sides(rig)["citizen touch"]


async def test_the_wipe_restores_the_devices_and_the_receipt_counts_without_content(rig: Rig) -> None:
    await in_session(rig)
    await rig.station.set_handover(True)
    await rig.run(30)
    await rig.station.set_handover(False)
    await rig.station.set_confidential(True)
    await rig.run(20)
    session = rig.station.session
    assert session is not None
    await rig.drive(rig.station.next_citizen())  # the wipe ends the entry itself
    assert not rig.station.state.handover.confidential and rig.station.state.handover.handovers == 0
    assert sides(rig) == {
        "agent keyboard": True,
        "agent mouse": True,
        "citizen touch": False,
        "citizen keyboard": False,
    }
    assert not rig.station.state.displays.agent_curtain
    receipt = next(r for r in await Store(rig.state_dir / "kioskd.sqlite").receipts(5) if r.session == session.id)
    verdict = next(h for h in receipt.handlers if h["name"] == "inputs")
    assert verdict["ok"] and verdict["note"] == "1 handover(s) 30 s, 1 confidential 20 s"
    store = Store(rig.state_dir / "kioskd.sqlite")
    assert receipt.opened_at is not None
    visits = await store.activity(month_of(receipt.opened_at, rig.station.profile.activity.timezone))
    visit = next(v for v in visits if v.opened_at == receipt.opened_at)
    assert (visit.handovers, visit.handover_seconds, visit.confidential, visit.confidential_seconds) == (1, 30, 1, 20)
    summary = summarize("any", visits)
    assert (summary["handovers"], summary["confidential"]) == (1, 1)
    assert "Main au citoyen : 1 fois (0,5 min)" in render(summary, "fr")


async def test_a_device_that_stays_live_fails_the_wipe(rig: Rig) -> None:
    await in_session(rig)
    await rig.station.set_handover(True)
    await rig.sim("inputs", "stuck")
    with pytest.raises(WipeError):
        await rig.drive(rig.station.next_citizen())
    verdict = next(v for v in rig.station.wipes[-1].verdicts if v.name == "inputs")
    assert not verdict.ok and "citizen touch enabled" in verdict.reason
    assert rig.station.mode == "wiping"
    await rig.sim("inputs", "mended")
    await rig.drive(rig.station.retry_wipe())
    assert rig.station.mode == "ready"


@pytest.mark.parametrize("name", ["virtual-van.toml", "example-van.toml", "example-bus-pi.toml", "sim.toml"])
def test_the_shipped_session_app_commands_fill_their_placeholders(name: str) -> None:
    """The virtual van's test page carries a script: its braces must survive the command's str.format."""
    from pathlib import Path

    from kioskd.profile import load_profile

    profile = load_profile(Path(__file__).resolve().parents[2] / "profiles" / name)
    values = {"session": "s", "workspace": "w", "home": "h", "downloads": "d", "browser": "b"}
    filled = [part.format(**values) for part in profile.station.app]
    assert len(filled) == len(profile.station.app)
