"""The station's state machine on the simulated van: every transition, every command in every state."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kioskd.errors import TransitionRefused, WipeError
from kioskd.hal import ButtonPressed
from kioskd.station import check_transition
from kioskd.station.snapshot import MODES, StationChanged
from tests.conftest import Rig

# The specification, written independently of kioskd.station.TRANSITIONS.
ALLOWED = {
    ("off", "starting"),
    ("starting", "ready"),
    ("starting", "wiping"),
    ("starting", "travelling"),
    ("starting", "shutting_down"),
    ("starting", "off"),
    ("ready", "in_session"),
    ("ready", "travelling"),
    ("ready", "shutting_down"),
    ("in_session", "wiping"),
    ("wiping", "ready"),
    ("wiping", "travelling"),
    ("wiping", "shutting_down"),
    ("travelling", "ready"),
    ("travelling", "shutting_down"),
    ("shutting_down", "off"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(MODES, MODES)))
def test_transition_is_allowed_only_when_specified(current: str, target: str) -> None:
    if (current, target) in ALLOWED:
        check_transition(current, target)  # type: ignore[arg-type]
    else:
        with pytest.raises(TransitionRefused) as refused:
            check_transition(current, target)  # type: ignore[arg-type]
        assert refused.value.key == "refused.transition"
        assert refused.value.params == {"current": current, "target": target}


def test_a_session_can_only_end_through_a_wipe() -> None:
    for target in MODES:
        if target != "wiping":
            with pytest.raises(TransitionRefused):
                check_transition("in_session", target)


async def _into(rig: Rig, mode: str) -> None:
    """Bring the station into ``mode`` with the same commands an agent or the van would use."""
    if mode == "off":
        return
    await rig.station.start()
    if mode == "in_session":
        await rig.station.next_citizen()
    elif mode == "travelling":
        await rig.sim("ignition", "on")
    elif mode == "wiping":  # a wipe that failed: the print queue refuses to purge
        await rig.station.next_citizen()
        await rig.sim("printer", "stuck")
        with pytest.raises(WipeError):
            await rig.station.next_citizen()
    assert rig.station.mode == mode


# (state, command) -> resulting state, or the refusal's catalogue key
MATRIX = {
    ("off", "start"): "ready",
    ("off", "next"): "refused.next.state",
    ("off", "end_of_day"): "refused.end_of_day.state",
    ("ready", "start"): "refused.start.not_off",
    ("ready", "next"): "in_session",
    ("ready", "end_of_day"): "off",
    ("in_session", "start"): "refused.start.not_off",
    ("in_session", "next"): "in_session",
    ("in_session", "end_of_day"): "off",
    ("travelling", "start"): "refused.start.not_off",
    ("travelling", "next"): "refused.next.travelling",
    ("travelling", "end_of_day"): "off",
    ("wiping", "start"): "refused.start.not_off",
    ("wiping", "next"): "refused.next.wiping",
    ("wiping", "end_of_day"): "refused.next.wiping",
}


@pytest.mark.parametrize(("mode", "command"), sorted(MATRIX))
async def test_command_in_each_state(rig: Rig, mode: str, command: str) -> None:
    await _into(rig, mode)
    expected = MATRIX[(mode, command)]
    action = getattr(rig.station, "next_citizen" if command == "next" else command)
    if expected.startswith("refused."):
        with pytest.raises(TransitionRefused) as refused:
            await action()
        assert refused.value.key == expected
        assert rig.station.mode == mode, "a refused command must not change the state"
    else:
        await action()
        assert rig.station.mode == expected


async def test_next_citizen_wipes_the_previous_session_before_opening_a_new_one(rig: Rig) -> None:
    await _into(rig, "in_session")
    first = rig.station.session
    assert first is not None and first.workspace.root.is_dir()
    (first.workspace.scans / "scan.pdf").write_bytes(b"%PDF-1.4 citizen")
    await rig.station.next_citizen()
    second = rig.station.session
    assert second is not None and second.id != first.id
    assert not first.workspace.root.exists()
    modes = [e.state.mode for e in rig.of(StationChanged) if e.state.mode != e.previous.mode]
    assert modes[-3:] == ["wiping", "ready", "in_session"]
    assert rig.station.state.sessions_today == 2


async def test_short_press_starts_then_opens_a_session_and_long_press_ends_the_day(rig: Rig) -> None:
    rig.bus.publish(ButtonPressed(long=False))
    await rig.station.idle()
    assert rig.station.mode == "ready"
    rig.bus.publish(ButtonPressed(long=False))
    await rig.station.idle()
    assert rig.station.mode == "in_session"
    rig.bus.publish(ButtonPressed(long=True))
    await rig.station.idle()
    assert rig.station.mode == "off"
    assert rig.station.session is None and rig.station.wipes[-1].reason == "end_of_day"


async def test_hold_shorter_than_hold_time_is_a_short_press(rig: Rig) -> None:
    await rig.sim("hold", "2.5")  # the profile's hold time is 3 s
    assert rig.station.mode == "ready"
    await rig.sim("hold", "3")
    assert rig.station.mode == "off"


async def test_button_press_during_a_wipe_failure_shows_a_notice_and_changes_nothing(rig: Rig) -> None:
    await _into(rig, "wiping")
    rig.bus.publish(ButtonPressed(long=False))
    await rig.station.idle()
    assert rig.station.mode == "wiping"
    keys = [n.key for n in rig.station.state.notices]
    assert "wipe.failed" in keys and "refused.next.wiping" in keys


async def test_failed_wipe_blocks_new_sessions_until_retry_succeeds(rig: Rig) -> None:
    await _into(rig, "wiping")
    with pytest.raises(TransitionRefused):
        await rig.station.next_citizen()
    await rig.station.retry_wipe()
    assert rig.station.mode == "wiping", "the queue still refuses: the retry must fail too"
    await rig.sim("printer", "unstuck")
    await rig.station.retry_wipe()
    assert rig.station.mode == "ready"
    assert all(n.key != "wipe.failed" for n in rig.station.state.notices)


def _leds(rig: Rig) -> list[str]:
    return rig.history.states("button", "led")


async def test_led_follows_the_station(rig: Rig) -> None:
    await _into(rig, "in_session")
    await rig.station.idle()
    assert rig.devices.button.state.led == "double"
    await rig.station.end_of_day()
    await rig.station.idle()
    assert rig.devices.button.state.led == "off"
    # starting, ready, in session, wiping and shutting down (one slow blink, sent once), off
    assert _leds(rig) == ["slow", "steady", "double", "slow", "off"]


async def test_led_blinks_fast_while_a_failed_wipe_blocks_the_station(rig: Rig) -> None:
    await _into(rig, "wiping")
    await rig.station.idle()
    assert rig.devices.button.state.led == "fast"
    await rig.sim("printer", "unstuck")
    await rig.station.retry_wipe()
    await rig.station.idle()
    assert rig.devices.button.state.led == "steady"


async def test_led_blinks_fast_during_a_device_fault_and_stops_when_it_clears(rig: Rig) -> None:
    from kioskd.hal import DeviceFault

    await _into(rig, "in_session")
    rig.bus.publish(DeviceFault("camera", "camera.black"))
    await rig.station.idle()
    assert rig.devices.button.state.led == "fast"
    rig.bus.publish(DeviceFault("camera", "camera.black", cleared=True))
    await rig.station.idle()
    assert rig.devices.button.state.led == "double"


async def test_led_blinks_fast_on_a_low_battery_but_not_on_an_idle_warning(rig: Rig) -> None:
    await _into(rig, "ready")
    await rig.sim("shore", "off")
    await rig.run(6)  # the shore debounce
    await rig.sim("soc", "25")
    assert rig.devices.button.state.led == "fast"
    await rig.sim("shore", "on")
    await rig.sim("soc", "80")
    assert rig.devices.button.state.led == "steady"
    await rig.station.next_citizen()
    cfg = rig.station.profile.station
    await rig.run(cfg.idle_timeout - cfg.idle_warning + 1)
    assert any(n.topic == "idle" for n in rig.station.state.notices)
    assert rig.devices.button.state.led == "double"


async def test_led_stays_off_while_the_station_is_off_whatever_the_notices(rig: Rig) -> None:
    await rig.sim("shore", "off")
    await rig.run(6)
    await rig.sim("soc", "25")
    assert any(n.topic == "power" and n.level != "info" for n in rig.station.state.notices)
    assert rig.devices.button.state.led == "off"


async def test_ignition_during_a_session_wipes_it_and_travels(rig: Rig) -> None:
    await _into(rig, "in_session")
    workspace = rig.station.session.workspace.root  # type: ignore[union-attr]
    await rig.sim("ignition", "on")
    assert rig.station.mode == "travelling"
    assert not workspace.exists()
    assert rig.station.wipes[-1].reason == "travel"
    assert rig.devices.displays.state.powered is False
    await rig.sim("ignition", "off")
    assert rig.station.mode == "ready"
    assert rig.devices.displays.state.powered is True


async def test_device_states_reach_the_snapshot(rig: Rig) -> None:
    await rig.sim("signal", "12")
    await rig.sim("soc", "42")
    await rig.sim("output", "citizen", "unplug")
    state = rig.station.state
    assert state.modem.signal == 12
    assert state.power.soc == 42
    assert [o.connected for o in state.displays.outputs if o.role == "citizen"] == [False]
    as_json = state.to_json()
    for key in ("station", "power", "modem", "displays", "scanner", "printer", "button", "audio", "camera", "session"):
        assert key in as_json


async def test_a_fault_without_a_catalogue_entry_is_still_shown(rig: Rig) -> None:
    from kioskd.hal import DeviceFault

    rig.bus.publish(DeviceFault("printer", "printer.door-open-error"))
    shown = [n.to_json() for n in rig.station.state.notices]
    assert shown and shown[0]["key"] == "printer.door-open-error"
    assert "printer.door-open-error" in shown[0]["fr"] and shown[0]["fr"].startswith("Problème matériel")


async def test_two_faults_of_one_device_are_cleared_separately(rig: Rig) -> None:
    from kioskd.hal import DeviceFault

    rig.bus.publish(DeviceFault("printer", "printer.media-empty"))
    rig.bus.publish(DeviceFault("printer", "printer.toner-low"))
    rig.bus.publish(DeviceFault("printer", "printer.media-empty", cleared=True))
    assert [n.key for n in rig.station.state.notices] == ["printer.toner-low"]


async def test_a_double_press_does_not_wipe_the_session_the_first_press_opened(rig: Rig) -> None:
    await rig.station.start()
    first = asyncio.ensure_future(rig.station.next_citizen())
    await asyncio.sleep(0)  # the first press holds the station
    with pytest.raises(TransitionRefused) as refused:
        await rig.station.next_citizen()
    assert refused.value.key == "refused.busy"
    await first
    assert rig.station.mode == "in_session" and rig.station.state.sessions_today == 1
    assert not rig.station.wipes


async def test_privacy_toggles_the_curtain_and_is_refused_while_the_screens_are_off(rig: Rig) -> None:
    with pytest.raises(TransitionRefused) as refused:
        await rig.station.set_privacy()
    assert refused.value.key == "refused.privacy.off"
    await _into(rig, "in_session")
    assert await rig.station.set_privacy() is True
    assert rig.station.state.displays.curtain is True
    assert await rig.station.set_privacy(True) is True, "on stays on"
    assert await rig.station.set_privacy() is False
    assert rig.station.state.displays.curtain is False


async def test_the_microphone_opens_with_a_session_and_closes_with_its_wipe(rig: Rig) -> None:
    await _into(rig, "ready")
    assert rig.devices.audio.state.mic_muted is True
    await rig.station.next_citizen()
    assert rig.devices.audio.state.mic_muted is False
    await rig.station.next_citizen()  # the wipe mutes it, the next session opens it again
    rig.history.assert_states(["session_start", "reset", "session_start"], device="audio")


async def test_a_shore_notice_does_not_hide_a_low_battery_warning(rig: Rig) -> None:
    await _into(rig, "ready")
    await rig.sim("soc", "25")  # low, but on shore: no warning yet
    await rig.sim("shore", "off")
    await rig.run(6)  # the debounce: "shore disconnected", then the level is looked at
    keys = {n.key for n in rig.station.state.notices}
    assert {"power.shore.disconnected", "power.warn"} <= keys, keys
    assert rig.devices.button.state.led == "fast", "the battery needs the agent; being on battery alone does not"
