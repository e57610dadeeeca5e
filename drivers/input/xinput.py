"""The citizen's and the agent's input devices on the station's X server, through XInput2 (python-xlib's xinput
extension): "Device Enabled" turns a device on or off, "Coordinate Transformation Matrix" maps an absolute device
(a touchscreen, qemu's usb-tablet) onto the citizen's output as ``xinput map-to-output`` does.

Design. One worker thread owns a python-xlib connection and listens to XInput2's hierarchy events, so a device
plugged later (or re-created by the X server) gets its side's setting and mapping at once. The profile names the
citizen's devices (and optionally the agent's) by udev properties, as the evdev button is named: pyudev gives their
``/dev/input/event*`` nodes, and the X devices whose "Device Node" property (set by the libinput and evdev X
drivers) is one of them are the ones; an X device name can be given instead, for X drivers without device nodes.
Without an agent list, the agent's devices are every other keyboard and pointer except the X server's own XTEST
devices (which software, not a person, drives). The ``xinput`` tool is not needed: python-xlib's requests
(XIQueryDevice, XIGetProperty, XIChangeProperty) cover it. It never reads what a device sends.

Keyboard focus: the station has no window manager, so the X focus stays where the panel's browser put it and the
citizen's keys would reach the panel, not the page. While the citizen's side is live kioskd (trusted) gives the focus
to the session app's window, the topmost mapped top-level window that is not an override-redirect curtain
(PointerRoot if there is none); the previous focus is given back after."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import select
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

from pydantic import Field, model_validator
from Xlib import X, Xatom, display, error
from Xlib.ext import xinput

from kioskd.hal import (
    IDENTITY,
    DeviceError,
    DriverContext,
    DriverOptions,
    InputDevice,
    InputKind,
    InputsChanged,
    InputSide,
    InputsState,
    Matrix,
    Output,
    output_matrix,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ENABLED = "Device Enabled"
MATRIX = "Coordinate Transformation Matrix"
NODE = "Device Node"
XTEST = "XTEST"  # the X server's own test devices ("Virtual core XTEST pointer"): never a person's


class DeviceMatch(DriverOptions):
    match: dict[str, str] = Field(
        default_factory=dict,
        description="udev properties the device's event node must have, e.g. "
        '{ ID_INPUT_TOUCHSCREEN = "1", ID_PATH = "pci-0000:00:14.0-usb-0:3:1.0" }',
    )
    name: str | None = Field(None, min_length=1, description="or the X device's name (xinput list), exactly")

    @model_validator(mode="after")
    def _something(self) -> DeviceMatch:
        if not self.match and self.name is None:
            raise ValueError("a device needs udev properties (match) or an X device name (name)")
        return self


class XinputOptions(DriverOptions):
    display: str = Field(":0", description="the X display of the station's session")
    xauthority: str | None = Field(None, description="the X authority file; default none (or $XAUTHORITY)")
    citizen: list[DeviceMatch] = Field(
        default_factory=list, description="the citizen's devices (touchscreen, keyboard, mouse): disabled by default"
    )
    agent: list[DeviceMatch] = Field(
        default_factory=list,
        description="the agent's keyboard and mouse (disabled during a confidential entry); "
        "default every other keyboard and pointer",
    )
    reconnect: float = Field(2.0, gt=0, description="seconds between attempts to reach the X server")
    timeout: float = Field(5.0, gt=0, description="seconds the first connection may take")


@dataclass(frozen=True)
class Seen:
    """One X slave device as XIQueryDevice and its properties tell."""

    id: int
    name: str
    kind: InputKind
    node: str = ""
    enabled: bool = True
    matrix: Matrix | None = None  # None: not a pointer (no matrix)


def is_match(properties: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(properties.get(key) == value for key, value in wanted.items())


def udev_nodes(matches: list[DeviceMatch]) -> set[str]:
    """The ``/dev/input/event*`` nodes whose udev properties one of ``matches`` names (none without udev)."""
    wanted = [m.match for m in matches if m.match]
    if not wanted:
        return set()
    try:
        import pyudev  # only for vans that name devices by udev properties

        context = pyudev.Context()
        devices = list(context.list_devices(subsystem="input"))
    except Exception as exc:  # no udev database (a container): no device found that way
        log.debug("inputs: udev not readable: %s", exc)
        return set()
    nodes = set()
    for device in devices:
        node = device.device_node or ""
        if node.startswith("/dev/input/event") and any(is_match(dict(device.properties), w) for w in wanted):
            nodes.add(node)
    return nodes


def side_of(
    seen: Seen, citizen: list[DeviceMatch], agent: list[DeviceMatch], nodes: dict[str, set[str]]
) -> InputSide | None:
    """The side of one X device, or None (neither: the button, a power key, XTEST)."""

    def named(matches: list[DeviceMatch], side: str) -> bool:
        return any(m.name == seen.name for m in matches) or (seen.node != "" and seen.node in nodes[side])

    if named(citizen, "citizen"):
        return "citizen"
    if agent:
        return "agent" if named(agent, "agent") else None
    return None if XTEST in seen.name else "agent"


def same_matrix(a: Matrix, b: Matrix) -> bool:
    """Equal to the FLOAT property's single precision."""
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def pack_matrix(matrix: Matrix) -> list[int]:
    """Nine floats as the 32-bit words XIChangeProperty carries (the FLOAT type is IEEE single precision)."""
    return list(struct.unpack("=9I", struct.pack("=9f", *matrix)))


def unpack_matrix(words: Any) -> Matrix:
    values = struct.unpack("=9f", struct.pack("=9I", *words))
    return (values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7], values[8])


class XinputInputs:
    """An ``Inputs`` backend on an X server with XInput 2 (Xorg with libinput or evdev devices)."""

    options_model: ClassVar[type[XinputOptions]] = XinputOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit = ctx.emit
        self._state = InputsState(detail="not started")
        self._live: dict[InputSide, bool] = {"citizen": False, "agent": True}
        self._output: Output | None = None
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._connected = threading.Event()
        # worker-thread side
        self._display: display.Display | None = None
        self._atoms: dict[str, int] = {}
        self._reconnect_at = 0.0
        self._focus_before: Any = None  # the X focus before the citizen's side went live (None: not taken)

    @property
    def state(self) -> InputsState:
        return self._state

    # ------------------------------------------------------------------------------------------- loop side
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inputs-xinput", daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, self._connected.wait, self.options.timeout)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        await asyncio.get_running_loop().run_in_executor(None, thread.join, self.options.timeout)

    async def set_enabled(self, side: InputSide, on: bool) -> None:
        def change() -> None:
            self._live[side] = on
            self._x_apply()

        await self._call(change)

    async def map_citizen(self, output: Output) -> None:
        def change() -> None:
            self._output = output
            self._x_apply()

        await self._call(change)

    async def restore(self) -> list[str]:
        def change() -> list[str]:
            self._live = {"citizen": False, "agent": True}
            self._x_apply()
            return [
                f"{d.name} is {'enabled' if d.enabled else 'disabled'}"
                for d in self._state.devices
                if d.enabled != (d.side == "agent")
            ]

        return await self._call(change)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise DeviceError("the inputs backend is not started", where="inputs")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((fn, future))
        os.write(self._wake_w, b"x")
        return await asyncio.wrap_future(future)

    # ------------------------------------------------------------------------------------------- worker thread
    def _run(self) -> None:
        try:
            while not self._stopping:
                if self._display is None and time.monotonic() >= self._reconnect_at:
                    self._x_connect()
                fds: list[Any] = [self._wake_r]
                timeout: float | None = None
                if self._display is not None:
                    fds.append(self._display)
                else:
                    timeout = max(0.0, self._reconnect_at - time.monotonic())
                if self._display is None or not self._display.pending_events():
                    readable = select.select(fds, [], [], timeout)[0]
                    if self._wake_r in readable:
                        os.read(self._wake_r, 4096)
                try:
                    self._x_calls()
                    self._x_events()
                except (error.ConnectionClosedError, OSError) as exc:
                    log.warning("inputs: X connection lost: %s", exc)
                    self._x_disconnect()
                    self._publish(replace(self._state, detail="X server not reachable"))
                    self._reconnect_at = time.monotonic() + self.options.reconnect
        finally:
            self._x_disconnect()
            self._fail_calls()

    def _x_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if self._display is None:
                    raise DeviceError(
                        "the X server is not reachable", where="inputs", action="check the X session of the station"
                    )
                future.set_result(fn())
            except (error.ConnectionClosedError, OSError) as exc:
                future.set_exception(DeviceError(f"X connection lost: {exc}", where="inputs"))
                raise
            except Exception as exc:
                future.set_exception(exc)

    def _fail_calls(self) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(DeviceError("the inputs backend is closed", where="inputs"))

    def _x_connect(self) -> None:
        if self.options.xauthority:
            os.environ["XAUTHORITY"] = self.options.xauthority
        try:
            d = display.Display(self.options.display)
            if d.query_extension(xinput.extname) is None:
                d.close()
                raise DeviceError("the X server has no XInput extension", where="inputs")
            d.xinput_query_version()
        except (error.DisplayError, error.ConnectionClosedError, OSError, DeviceError) as exc:
            if self._state.detail != "X server not reachable":
                log.warning("inputs: cannot reach the X server %s: %s", self.options.display, exc)
            self._publish(InputsState(detail="X server not reachable"))
            self._reconnect_at = time.monotonic() + self.options.reconnect
            self._connected.set()
            return
        self._display = d
        self._atoms = {name: d.intern_atom(name) for name in (ENABLED, MATRIX, NODE, "FLOAT")}
        d.screen().root.xinput_select_events([(xinput.AllDevices, xinput.HierarchyChangedMask)])
        log.info("inputs: connected to X display %s", self.options.display)
        self._x_apply()  # the profile's defaults at once: the citizen's devices off until the agent hands over
        self._connected.set()

    def _x_disconnect(self) -> None:
        d, self._display = self._display, None
        if d is not None:
            with contextlib.suppress(Exception):
                d.close()

    def _x_events(self) -> None:
        d = self._display
        if d is None:
            return
        changed = False
        while d.pending_events():
            ev = d.next_event()
            if getattr(ev, "evtype", None) == xinput.HierarchyChanged:
                changed = True
        if changed:
            self._x_apply()  # a device plugged (or re-created): it takes its side's setting and mapping

    # ------------------------------------------------------------------------------------------- devices
    def _x_property(self, device: int, name: str, length: int) -> Any:
        assert self._display is not None
        reply = self._display.xinput_get_device_property(device, self._atoms[name], X.AnyPropertyType, 0, length)
        if not reply.type:
            return None
        return reply.value[1]

    def _x_read(self) -> list[Seen]:
        assert self._display is not None
        seen = []
        for info in self._display.xinput_query_device(xinput.AllDevices).devices:
            if info.use not in (xinput.SlavePointer, xinput.SlaveKeyboard, xinput.FloatingSlave):
                continue
            classes = {c.type for c in info.classes}
            absolute = any(c.type == xinput.ValuatorClass and c.mode == xinput.ModeAbsolute for c in info.classes)
            pointer = info.use == xinput.SlavePointer or xinput.ValuatorClass in classes
            kind: InputKind = (
                "touch" if absolute or xinput.TouchClass in classes else "pointer" if pointer else "keyboard"
            )
            node = self._x_property(info.deviceid, NODE, 64)
            words = self._x_property(info.deviceid, MATRIX, 9) if pointer else None
            seen.append(
                Seen(
                    id=info.deviceid,
                    name=str(info.name),
                    kind=kind,
                    node=node.decode(errors="replace").rstrip("\0") if isinstance(node, bytes) else "",
                    enabled=bool(info.enabled),
                    matrix=unpack_matrix(words) if words is not None and len(words) == 9 else None,
                )
            )
        return seen

    def _x_screen(self) -> tuple[int, int]:
        """The whole screen now (a round trip: python-xlib's setup values do not follow RandR's resizes)."""
        assert self._display is not None
        geometry = self._display.screen().root.get_geometry()
        return int(geometry.width), int(geometry.height)

    def _x_apply(self) -> None:
        """Every known device as its side wants it, the citizen's absolute devices mapped; then read back."""
        assert self._display is not None
        d = self._display
        nodes = {"citizen": udev_nodes(self.options.citizen), "agent": udev_nodes(self.options.agent)}
        wanted_matrix: Matrix | None = None
        if self._output is not None:
            wanted_matrix = output_matrix(*self._x_screen(), self._output)
        for seen in self._x_read():
            side = side_of(seen, self.options.citizen, self.options.agent, nodes)
            if side is None:
                continue
            if (
                side == "citizen"
                and seen.kind == "touch"
                and wanted_matrix is not None
                and seen.matrix is not None
                and not same_matrix(seen.matrix, wanted_matrix)
            ):
                d.xinput_change_device_property(
                    seen.id,
                    self._atoms[MATRIX],
                    self._atoms["FLOAT"],
                    X.PropModeReplace,
                    (32, pack_matrix(wanted_matrix)),
                )
            live = self._live[side]
            if seen.enabled != live:
                d.xinput_change_device_property(
                    seen.id, self._atoms[ENABLED], Xatom.INTEGER, X.PropModeReplace, (8, [int(live)])
                )
        self._x_focus(self._live["citizen"])
        d.sync()
        self._x_publish(nodes)

    def _x_focus(self, citizen: bool) -> None:
        """The session app's window takes the focus while the citizen's side is live (else it follows the pointer);
        the previous focus back after."""
        assert self._display is not None
        d = self._display
        if citizen and self._focus_before is None:
            self._focus_before = d.get_input_focus().focus
            # the session app's window: the topmost mapped top-level window that is not override-redirect (the
            # curtains are); with no window manager the newest window, the app's, is mapped above the panel's.
            app = self._x_topmost()
            d.set_input_focus(app if app is not None else X.PointerRoot, X.RevertToPointerRoot, X.CurrentTime)
        elif not citizen and self._focus_before is not None:
            before, self._focus_before = self._focus_before, None
            with contextlib.suppress(error.XError):  # the window it was on may be gone: PointerRoot then stays
                d.set_input_focus(before, X.RevertToPointerRoot, X.CurrentTime)
                d.sync()

    def _x_topmost(self) -> Any:
        assert self._display is not None
        root = self._display.screen().root
        for window in reversed(root.query_tree().children):  # stacking order: bottom to top
            with contextlib.suppress(error.XError):  # a window may go between the listing and the question
                attrs = window.get_attributes()
                if attrs.map_state == X.IsViewable and not attrs.override_redirect and attrs.win_class == X.InputOutput:
                    return window
        return None

    def _x_publish(self, nodes: dict[str, set[str]]) -> None:
        devices = []
        for seen in self._x_read():
            side = side_of(seen, self.options.citizen, self.options.agent, nodes)
            if side is not None:
                mapped = side == "citizen" and seen.kind == "touch" and self._output is not None
                devices.append(
                    InputDevice(
                        seen.name,
                        side,
                        seen.kind,
                        seen.enabled,
                        mapped_to=self._output.name if mapped and self._output is not None else "",
                        matrix=seen.matrix or IDENTITY,
                    )
                )
        missing = len(self.options.citizen) and not any(d.side == "citizen" for d in devices)
        self._publish(
            InputsState(
                tuple(devices),
                citizen=self._live["citizen"],
                agent=self._live["agent"],
                detail="no citizen input device found" if missing else "",
            )
        )

    def _publish(self, state: InputsState) -> None:
        if state != self._state:
            self._state = state
            self._emit(InputsChanged(state))
