"""The xinput backend on the display tests' private Xorg, with real X input devices from Xorg's ``inputtest``
driver (a touchscreen-like absolute pointer and a keyboard on the citizen's side, a mouse and a keyboard on the
agent's): enabled and disabled, asserted through XInput from another connection; the touchscreen mapped onto the
citizen's output in the mirror, curtain, extended and confidential layouts of the real xrandr backend, compared
with what ``xinput map-to-output`` sets, and proved by a touch that the X server moves the pointer to.

What this proves: the X server's own properties change as the policy asks and a mapped absolute device's events
land on the citizen's output. What it does not: that udev properties find a libinput/evdev device (inputtest
devices have no "Device Node"; there is no /dev/uinput here), which the virtual van covers with qemu's devices."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from Xlib import X, display
from Xlib.ext import xinput

from drivers.display.xrandr import XrandrDisplays
from drivers.input.xinput import MATRIX, XinputInputs, unpack_matrix
from kioskd.clock import RealClock
from kioskd.hal import DriverContext, Output
from tests.integration import require
from tests.integration.inputtest_devices import ABS_MAX, Client, Fake, config
from tests.integration.power_services import Recorder, wait_until
from tests.integration.xorg_service import XServer, running_xorg

pytestmark = pytest.mark.integration

AGENT_SIDE = ("agent mouse", "agent keyboard")
CITIZEN_SIDE = ("citizen touch", "citizen keyboard")


@pytest.fixture
def sockets() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kx-", dir="/tmp"))  # unix socket paths are short: not pytest's tmp_path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fakes(sockets: Path) -> dict[str, Fake]:
    devices = [
        Fake("citizen touch", "PointerAbsolute", sockets / "touch"),
        Fake("citizen keyboard", "Keyboard", sockets / "ckbd"),
        Fake("agent mouse", "Pointer", sockets / "mouse"),
        Fake("agent keyboard", "Keyboard", sockets / "akbd"),
    ]
    return {d.name: d for d in devices}


@pytest.fixture
def xorg(tmp_path: Path, fakes: dict[str, Fake]) -> Iterator[XServer]:
    with running_xorg(tmp_path, config(list(fakes.values()))) as server:
        yield server


def context(kind: str, driver: str, options: dict[str, Any], tmp_path: Path, emit: Recorder) -> DriverContext:
    return DriverContext(
        kind=kind,  # type: ignore[arg-type]
        driver=driver,
        options=options,
        clock=RealClock(),
        emit=emit,
        runtime_dir=tmp_path,
        source="test-profile.toml",
    )


@pytest.fixture
async def inputs(xorg: XServer, tmp_path: Path) -> AsyncIterator[XinputInputs]:
    options = {"display": xorg.display, "citizen": [{"name": name} for name in CITIZEN_SIDE]}
    backend = XinputInputs(context("inputs", "xinput", options, tmp_path, Recorder()))
    await backend.start()
    yield backend
    await backend.close()


@pytest.fixture
async def displays(xorg: XServer, tmp_path: Path) -> AsyncIterator[XrandrDisplays]:
    options = {"display": xorg.display, "agent": "DUMMY0", "citizen": "DUMMY1"}
    backend = XrandrDisplays(context("displays", "xrandr", options, tmp_path, Recorder()))
    xorg.plug("DUMMY1", "1280x1024")
    await backend.start()
    await backend.set_power(True)
    yield backend
    await backend.close()


def x_devices(xorg: XServer) -> dict[str, tuple[bool, tuple[float, ...] | None]]:
    """Every slave device as the X server tells another client: enabled, and its matrix (pointers only)."""
    d = display.Display(xorg.display)
    try:
        atom = d.intern_atom(MATRIX)
        seen = {}
        for info in d.xinput_query_device(xinput.AllDevices).devices:
            if info.use in (xinput.MasterPointer, xinput.MasterKeyboard):
                continue
            reply = d.xinput_get_device_property(info.deviceid, atom, X.AnyPropertyType, 0, 9)
            matrix = unpack_matrix(reply.value[1]) if reply.type else None
            seen[str(info.name)] = (bool(info.enabled), matrix)
        return seen
    finally:
        d.close()


def pointer(xorg: XServer) -> tuple[int, int]:
    d = display.Display(xorg.display)
    try:
        where = d.screen().root.query_pointer()
        return int(where.root_x), int(where.root_y)
    finally:
        d.close()


def xinput_tool(xorg: XServer, *args: str) -> None:
    program = require.binary("xinput", "xinput")
    done = subprocess.run([program, *args], env=xorg.env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"xinput {' '.join(args)}: {done.stderr.strip()}"


def citizen_output(displays: XrandrDisplays) -> Output:
    return next(o for o in displays.state.outputs if o.role == "citizen")


async def test_the_citizens_devices_are_disabled_from_the_start_and_the_agents_and_xtest_stay_enabled(
    xorg: XServer, inputs: XinputInputs
) -> None:
    seen = x_devices(xorg)
    assert [seen[name][0] for name in CITIZEN_SIDE] == [False, False]
    assert [seen[name][0] for name in AGENT_SIDE] == [True, True]
    assert seen["Virtual core XTEST pointer"][0] and seen["Virtual core XTEST keyboard"][0]
    kinds = {d.name: (d.side, d.kind, d.enabled) for d in inputs.state.devices}
    assert kinds == {
        "citizen touch": ("citizen", "touch", False),
        "citizen keyboard": ("citizen", "keyboard", False),
        "agent mouse": ("agent", "pointer", True),
        "agent keyboard": ("agent", "keyboard", True),
    }


async def test_a_touch_lands_on_the_citizen_output_in_every_layout_as_xinput_map_to_output_would_map_it(
    xorg: XServer,
    inputs: XinputInputs,
    displays: XrandrDisplays,
    fakes: dict[str, Fake],
    request: pytest.FixtureRequest,
) -> None:
    await inputs.set_enabled("citizen", True)
    touch = Client(fakes["citizen touch"].socket)  # one connection: the driver takes a single client
    request.addfinalizer(touch.close)
    layouts = {
        "mirror": lambda: displays.set_mirror(True),
        "curtain": lambda: displays.set_curtain(True),
        "extended": lambda: displays.set_curtain(False),
        "confidential": lambda: displays.set_agent_curtain(True),
    }
    for name, change in layouts.items():
        await change()
        if name == "extended":
            await displays.set_mirror(False)
        assert displays.state.layout == name
        citizen = citizen_output(displays)
        await inputs.map_citizen(citizen)
        ours = x_devices(xorg)["citizen touch"][1]
        assert ours is not None
        xinput_tool(xorg, "map-to-output", "citizen touch", "DUMMY1")
        theirs = x_devices(xorg)["citizen touch"][1]
        assert theirs == pytest.approx(ours, abs=1e-6), f"{name}: xinput maps otherwise"
        touch.move_to(0, 0)
        assert pointer(xorg) == (citizen.x, citizen.y), f"{name}: the top-left corner of the citizen's screen"
        touch.move_to(ABS_MAX, ABS_MAX)
        far = pointer(xorg)
        right, bottom = citizen.x + citizen.width - 1, citizen.y + citizen.height - 1
        assert abs(far[0] - right) <= 1 and abs(far[1] - bottom) <= 1, f"{name}: {far}"
    mapped = next(d for d in inputs.state.devices if d.name == "citizen touch")
    assert mapped.mapped_to == "DUMMY1" and mapped.enabled


async def test_a_disabled_touchscreen_is_off_in_the_x_server_and_delivers_nothing(
    xorg: XServer, inputs: XinputInputs, fakes: dict[str, Fake]
) -> None:
    await inputs.set_enabled("citizen", True)
    touch = Client(fakes["citizen touch"].socket)
    touch.move_to(ABS_MAX // 2, ABS_MAX // 2)
    before = pointer(xorg)
    await inputs.set_enabled("citizen", False)
    assert not x_devices(xorg)["citizen touch"][0]
    with pytest.raises((ConnectionError, OSError)):
        touch.move_to(0, 0)  # the X server turned the device off: its driver dropped the connection
    touch.close()
    assert pointer(xorg) == before


async def test_a_citizen_device_enabled_behind_kioskds_back_goes_dark_again(
    xorg: XServer, inputs: XinputInputs
) -> None:
    xinput_tool(xorg, "enable", "citizen keyboard")
    await wait_until(lambda: not x_devices(xorg)["citizen keyboard"][0], "the hierarchy event and kioskd's answer")
    assert not next(d for d in inputs.state.devices if d.name == "citizen keyboard").enabled


async def test_confidential_entry_disables_the_agents_devices_and_the_wipes_restore_verifies_the_defaults(
    xorg: XServer, inputs: XinputInputs
) -> None:
    await inputs.set_enabled("citizen", True)
    await inputs.set_enabled("agent", False)
    seen = x_devices(xorg)
    assert [seen[name][0] for name in (*CITIZEN_SIDE, *AGENT_SIDE)] == [True, True, False, False]
    assert seen["Virtual core XTEST keyboard"][0], "XTEST is no person's: left alone"
    assert await inputs.restore() == []
    seen = x_devices(xorg)
    assert [seen[name][0] for name in (*CITIZEN_SIDE, *AGENT_SIDE)] == [False, False, True, True]


async def test_the_keyboard_focus_goes_to_the_session_apps_window_while_the_citizen_has_the_controls_and_back_after(
    xorg: XServer, inputs: XinputInputs
) -> None:
    d = display.Display(xorg.display)
    try:
        screen = d.screen()
        panel = screen.root.create_window(0, 0, 100, 100, 0, screen.root_depth, X.InputOutput, X.CopyFromParent)
        panel.map()
        d.sync()
        panel.set_input_focus(X.RevertToParent, X.CurrentTime)  # where the trusted panel's browser puts it
        curtain = screen.root.create_window(
            0, 0, 50, 50, 0, screen.root_depth, X.InputOutput, X.CopyFromParent, override_redirect=True
        )
        app = screen.root.create_window(0, 0, 100, 100, 0, screen.root_depth, X.InputOutput, X.CopyFromParent)
        app.map()  # the session app's window, mapped after the panel's: on top, no window manager
        curtain.map()  # kioskd's curtains are override-redirect: never given the focus
        d.sync()
        await inputs.set_enabled("citizen", True)
        focus = d.get_input_focus().focus
        assert focus != X.PointerRoot and focus.id == app.id, "no window manager would give it to the session app"
        await inputs.set_enabled("citizen", False)
        assert d.get_input_focus().focus.id == panel.id
    finally:
        d.close()
