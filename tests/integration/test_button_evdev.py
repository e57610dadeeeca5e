"""The evdev button under umockdev: a USB key found by its udev properties among other input devices, opened and
grabbed through python-evdev (umockdev answers its ioctls from a recording written here), key events replayed in real
time from an evemu recording, then unplugged and plugged back in as another /dev/input/eventN.

umockdev's preload library must be in the process from its start: the scenario runs in a child under
``umockdev-wrapper`` and prints one JSON line per step (``run_under_umockdev``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from evdev import InputEvent, ecodes

from drivers.button.evdev import EvdevButton, KeyPresses
from drivers.button.press import PressTiming
from kioskd.clock import RealClock
from kioskd.hal import ButtonPressed, ButtonState, DriverContext, Event, ProfileError
from tests.integration.power_services import Recorder, run_under_umockdev, wait_until

pytestmark = pytest.mark.integration

MATCH = {"ID_VENDOR_ID": "1209", "ID_MODEL_ID": "b0b0"}
OPTIONS: dict[str, Any] = {"match": MATCH, "key": "KEY_ENTER", "hold_time": 0.5}


def context(options: dict[str, Any], emit: Any, runtime_dir: Path) -> DriverContext:
    return DriverContext("button", "evdev", options, RealClock(), emit, runtime_dir, source="test-profile.toml")


# --------------------------------------------------------------------------------------------------- the child
def _hex(data: bytes, size: int) -> str:
    return (data + bytes(size - len(data))).hex().upper()


def ioctl_recording(node: str, name: bytes) -> str:
    """What python-evdev asks of a one-key USB button when it opens it, as umockdev's ioctl recording format."""
    keys = bytearray(ecodes.KEY_MAX // 8 + 1)
    keys[ecodes.KEY_ENTER // 8] |= 1 << (ecodes.KEY_ENTER % 8)
    keys[ecodes.KEY_A // 8] |= 1 << (ecodes.KEY_A % 8)
    return "\n".join(
        [
            f"@DEV {node} (evdev)",
            "EVIOCGVERSION 0 01000100",
            "EVIOCGID 0 " + struct.pack("<HHHH", 3, 0x1209, 0xB0B0, 0x0111).hex().upper(),
            f"EVIOCGNAME(0) {len(name) + 1} " + _hex(name + b"\0", 256),
            "EVIOCGPHYS(0) 1 " + _hex(b"\0", 256),
            "EVIOCGUNIQ(0) 1 " + _hex(b"\0", 256),
            "EVIOCGBIT(0) 4 " + _hex(bytes([1 << ecodes.EV_SYN | 1 << ecodes.EV_KEY]), 4),
            "EVIOCGBIT(1) 96 " + keys.hex().upper(),
            "EVIOCGEFFECTS 0 00000000",
            "",
        ]
    )


def evemu(events: list[tuple[float, int, int, int]]) -> str:
    """An evemu recording: (seconds, type, code, value), each key event followed by its SYN_REPORT."""
    lines = []
    for at, kind, code, value in events:
        lines.append(f"E: {1000 + at:.6f} {kind:04x} {code:04x} {value}")
        lines.append(f"E: {1000 + at:.6f} 0000 0000 0")
    return "\n".join(lines) + "\n"


def button_device(node: str, devpath: str, vendor: str) -> str:
    return (
        f"P: {devpath}\nN: {node.removeprefix('/dev/')}\nE: DEVNAME={node}\nE: SUBSYSTEM=input\n"
        f"E: ID_INPUT=1\nE: ID_INPUT_KEY=1\nE: ID_VENDOR_ID={vendor}\nE: ID_MODEL_ID=b0b0\n"
    )


def _event(event: Event) -> dict[str, Any]:
    fields = dataclasses.asdict(event)
    return {"type": type(event).__name__, **fields}


async def umockdev_scenario() -> None:
    """The child's side (not a test): build the testbed, run the backend, print each step."""
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()  # before pyudev's first Context, or pyudev sees the real /sys
    assert UMockdev.in_mock_environment(), "not under umockdev-wrapper"
    work = Path(tempfile.mkdtemp(prefix="kioskd-evdev-"))
    key, other = ecodes.KEY_ENTER, ecodes.KEY_A

    def plug(node: str, devpath: str, vendor: str, events: list[tuple[float, int, int, int]]) -> str:
        """A device as udev sees it, its ioctls and its key presses ready before the "add" event goes out."""
        testbed.add_from_string(button_device(node, devpath, vendor))
        (work / "ioctl").write_text(ioctl_recording(node, b"Kiosk Big Button"))
        testbed.load_ioctl(node, str(work / "ioctl"))
        (work / "events").write_text(evemu(events))
        testbed.load_evemu_events(node, str(work / "events"))
        syspath = f"/sys{devpath}"
        testbed.uevent(syspath, "add")
        return syspath

    # a keyboard of another make is there first: it must be left alone
    testbed.add_from_string(button_device("/dev/input/event3", "/devices/usb1/1-1/input/input3/event3", "046d"))
    first = plug(
        "/dev/input/event7",
        "/devices/usb1/1-3/1-3:1.0/input/input7/event7",
        "1209",
        [
            (0.0, 1, other, 1),  # another key of the same device: ignored
            (0.05, 1, other, 0),
            (0.3, 1, key, 1),  # a short press: 0.2 s
            (0.5, 1, key, 0),
            (1.0, 1, key, 1),  # a hold: 0.9 s, auto-repeat meanwhile
            (1.3, 1, key, 2),
            (1.9, 1, key, 0),
        ],
    )
    events = Recorder()
    backend = EvdevButton(context(OPTIONS, events, work))

    def report(step: str, **extra: Any) -> None:
        line = {"step": step, "state": dataclasses.asdict(backend.state), "node": backend.node, **extra}
        print(json.dumps({**line, "events": [_event(e) for e in events.events]}), flush=True)
        events.events.clear()

    await backend.start()
    report("start")
    await wait_until(lambda: len(events.of(ButtonPressed)) >= 2, "two presses", within=10)
    held_while_down = backend.state.pressed
    await wait_until(lambda: not backend.state.pressed, "the release", within=10)
    await asyncio.sleep(0.3)
    report("presses", held_while_down=held_while_down)

    testbed.uevent(first, "remove")
    testbed.remove_device(first)
    await wait_until(lambda: not backend.state.present, "the unplug", within=10)
    report("unplugged")

    plug("/dev/input/event9", "/devices/usb1/1-4/1-4:1.0/input/input9/event9", "1209", [(0.2, 1, key, 1)])
    await wait_until(lambda: backend.state.present, "the replug", within=10)
    await wait_until(lambda: backend.state.pressed, "the press after the replug", within=10)
    report("replugged")
    await backend.close()


# --------------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def steps() -> dict[str, dict[str, Any]]:
    return {line["step"]: line for line in run_under_umockdev("tests.integration.test_button_evdev.umockdev_scenario")}


def test_the_button_is_found_by_its_udev_properties_not_the_first_input_device(steps: dict[str, Any]) -> None:
    start = steps["start"]
    assert start["node"] == "/dev/input/event7"
    assert start["state"]["present"] is True and start["state"]["pressed"] is False


def test_a_short_press_and_a_hold_with_auto_repeat_make_one_press_each(steps: dict[str, Any]) -> None:
    presses = [e for e in steps["presses"]["events"] if e["type"] == "ButtonPressed"]
    assert presses == [{"type": "ButtonPressed", "long": False}, {"type": "ButtonPressed", "long": True}]
    assert steps["presses"]["held_while_down"] is True, "the hold is reported before the key is released"
    pressed = [e["state"]["pressed"] for e in steps["presses"]["events"] if e["type"] == "ButtonChanged"]
    assert pressed == [True, False, True, False], "the other key moved nothing"


def test_the_button_survives_unplugging_and_comes_back_on_a_new_event_node(steps: dict[str, Any]) -> None:
    assert steps["unplugged"]["state"]["present"] is False and steps["unplugged"]["node"] is None
    replugged = steps["replugged"]
    assert replugged["node"] == "/dev/input/event9"
    assert replugged["state"]["present"] is True and replugged["state"]["pressed"] is True


# The kernel's event times decide, not the timer: a hold whose key-up is read together with its key-down (a busy
# loop, a batch read) is still long; these are real evdev.InputEvent objects as a device would deliver them.
def _key(at: float, value: int) -> InputEvent:
    return InputEvent(int(at), round(at % 1 * 1e6), ecodes.EV_KEY, ecodes.KEY_ENTER, value)


def test_press_length_comes_from_the_event_times_when_events_arrive_in_a_batch() -> None:
    events = Recorder()
    presses = KeyPresses(ecodes.KEY_ENTER, PressTiming(3.0, events, ButtonState(present=True)))
    for event in (_key(100.0, 1), _key(102.9, 0), _key(110.0, 1), _key(113.0, 0), _key(120.0, 1), _key(120.1, 2)):
        presses.feed(event)  # no loop: no timer
    assert events.of(ButtonPressed) == [ButtonPressed(long=False), ButtonPressed(long=True)]
    presses.feed(_key(130.0, 0))
    assert events.of(ButtonPressed)[-1] == ButtonPressed(long=True)


def test_a_profile_without_udev_properties_or_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="match"):
        EvdevButton(context({"match": {}}, Recorder(), tmp_path))
    with pytest.raises(ProfileError, match="unknown key"):
        EvdevButton(context({"match": MATCH, "key": "KEY_NOPE"}, Recorder(), tmp_path))
