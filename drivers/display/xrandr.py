"""The agent's and the citizen's screens on X11 through RandR: mirror, privacy curtain, hotplug, power, clipboard.

Design. One worker thread owns a python-xlib connection: it reads the outputs (RandR), listens to RandR's screen,
output and CRTC change events (the X server itself turns the kernel's DRM hotplug uevents into those, so no udev
monitor is needed), draws the curtain and owns the selections. Layouts are applied by one ``xrandr`` call per change:
xrandr already orders the CRTC changes and the screen resize right for every driver, which a hand-written
``RRSetCrtcConfig`` sequence would have to relearn. The layouts:

- **mirror**: agent and citizen at (0, 0) in the agent's best mode (preferred, else largest) when the citizen output
  has a mode of that size. Otherwise the citizen's best mode scaled from the agent's (``--scale-from``, a RandR
  transform); a driver that refuses transforms (BadValue: video-dummy, some KMS drivers) gets the largest mode both
  outputs share instead, remembered until the outputs change and said in ``state.detail`` and the log. Without any
  common mode the screens go side by side (``extended``), said the same way.
- **curtain** (privacy): the layout becomes side by side with the citizen output placed right of the agent's, in the
  same modes as the mirror (no monitor resync for a mere move), and a full-screen override-redirect window (no window
  manager involved) is mapped over the citizen output's rectangle *before* xrandr moves it there, so the citizen
  never sees the agent's picture on the way. The window's background is a pixmap rendered once per size with Pillow
  ("Un instant, s'il vous plaît" and a simple logo): the X server repaints it alone, without this process. The agent's
  windows stay where they were, on the agent output. It is re-raised when another top-level window maps or moves. A
  second press moves the citizen output back onto the agent's picture, then unmaps the window.
- **confidential** (the citizen types a secret): the mirror's modes, the citizen output at the picture's origin (it
  keeps showing the page) and the agent's placed right of it, over which a second override-redirect window ("Le
  citoyen saisit une information confidentielle") is mapped *before* xrandr moves it there, as for the curtain.
  The privacy curtain wins over it.
- **extended**: mirroring turned off (side by side, nothing drawn on the citizen side). **off**: every output
  ``--off`` (the monitors lose their signal and go to standby; unlike DPMS, a bumped mouse cannot wake them).

Outputs other than the agent's and the citizen's are turned off: a third screen must not show the agent's picture.
When the outputs change (a cable plugged, unplugged, a mode added), the layout is worked out again and applied.
Before the station's first command nothing is rearranged: the outputs are only read. Not handled: the pointer can
still be moved onto the curtained screen (python-xlib has no XFixes pointer barriers)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from PIL import Image, ImageDraw, ImageFont
from pydantic import Field
from Xlib import X, Xatom, display, error
from Xlib.ext import randr
from Xlib.protocol import event as xevent
from Xlib.xobject.drawable import Pixmap, Window

from kioskd.hal import (
    DeviceError,
    DisplayLayout,
    DisplaysChanged,
    DisplaysState,
    DriverContext,
    DriverOptions,
    Output,
    OutputConnected,
    OutputDisconnected,
    OutputRole,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Want = Literal["mirror", "curtain", "extended", "confidential", "off"]

CURTAIN_BACKGROUND = (31, 42, 68)  # a calm dark blue: neutral, and far from any page a browser shows
CURTAIN_INK = (255, 255, 255)
LOGO_COLOURS = ((0, 35, 149), (255, 255, 255), (237, 41, 57))  # the three bands of the public-service mark
HOTPLUG_SETTLE = 0.05  # seconds: RandR sends a burst of events per change; act once on the burst


class XrandrOptions(DriverOptions):
    display: str = Field(":0", description="the X display of the station's session")
    xauthority: str | None = Field(None, description="the X authority file; default none (or $XAUTHORITY)")
    agent: str | None = Field(None, description="the agent's output (e.g. eDP-1); default the primary, else the first")
    citizen: str | None = Field(None, description="the citizen's output (e.g. HDMI-1); default the other connected one")
    curtain_text: str = Field("Un instant, s'il vous plaît", min_length=1, description="what the curtain says")
    agent_curtain_text: str = Field(
        "Le citoyen saisit une information confidentielle",
        min_length=1,
        description="what the agent's screen says while the citizen types a secret",
    )
    curtain_font: str = Field(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", description="a TrueType font with French accents"
    )
    xrandr: str = Field("xrandr", description="the xrandr program (x11-xserver-utils)")
    timeout: float = Field(5.0, gt=0, description="seconds one xrandr call may take")
    reconnect: float = Field(2.0, gt=0, description="seconds between attempts to reach the X server")


# --------------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Mode:
    id: int
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Seen:
    """One output as RandR reports it: its modes (RandR order: preferred first) and what its CRTC shows now."""

    name: str
    connected: bool
    modes: tuple[Mode, ...] = ()
    preferred: int = 0  # how many of ``modes`` the monitor prefers (its EDID's native mode)
    primary: bool = False
    lit: bool = False  # a CRTC shows a mode on it
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0

    def best(self) -> Mode | None:
        """The monitor's preferred mode, else its largest."""
        if not self.modes:
            return None
        if self.preferred:
            return self.modes[0]
        return max(self.modes, key=lambda mode: (mode.width * mode.height, mode.width))

    def of_size(self, size: tuple[int, int]) -> Mode | None:
        return next((mode for mode in self.modes if mode.size == size), None)


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Plan:
    """A layout to apply: xrandr's arguments, where the curtain goes, what to say, what to try if refused."""

    layout: DisplayLayout
    args: tuple[str, ...]
    curtain: Rect | None = None
    agent_curtain: Rect | None = None  # confidential entry: the agent's own curtain
    detail: str = ""
    fallback: Plan | None = None
    scaled: bool = False


def roles(outputs: Sequence[Seen], agent: str | None, citizen: str | None) -> tuple[str | None, str | None]:
    """Which outputs are the agent's and the citizen's: the profile's names, else the primary (or first connected)
    for the agent and the other connected one for the citizen."""
    connected = [out.name for out in outputs if out.connected]
    primary = [out.name for out in outputs if out.connected and out.primary]
    if agent is None:
        agent = next((name for name in primary + connected if name != citizen), None)
    if citizen is None:
        citizen = next((name for name in connected if name != agent), None)
    return agent, citizen


def plan_layout(
    outputs: Sequence[Seen], agent_name: str | None, citizen_name: str | None, want: Want, scaling_refused: bool
) -> Plan:
    """The layout for ``want`` on these outputs (pure: the tests check it without an X server)."""
    by_name = {out.name: out for out in outputs}
    agent = by_name.get(agent_name or "")
    citizen = by_name.get(citizen_name or "")
    agent = agent if agent is not None and agent.connected and agent.modes else None
    citizen = citizen if citizen is not None and citizen.connected and citizen.modes else None
    # Everything else that is lit or connected goes dark: only the two known screens may show anything.
    others = tuple(
        arg
        for out in outputs
        if out.name not in {o.name for o in (agent, citizen) if o is not None} and (out.connected or out.lit)
        for arg in ("--output", out.name, "--off")
    )
    if want == "off" or (agent is None and citizen is None):
        lit = tuple(arg for o in (agent, citizen) if o is not None for arg in ("--output", o.name, "--off"))
        return Plan("off", lit + others, detail="" if want == "off" else "no output connected")

    def place(out: Seen, mode: Mode, x: int, *extra: str) -> tuple[str, ...]:
        return ("--output", out.name, "--mode", hex(mode.id), "--pos", f"{x}x0", "--rotate", "normal", *extra)

    plain = ("--transform", "none")  # undo a scaling left by an earlier mirror
    if agent is None or citizen is None:
        alone = agent or citizen
        assert alone is not None
        mode = alone.best()
        assert mode is not None
        args = place(alone, mode, 0, *plain) + others
        missing = "citizen" if citizen is None else "agent"
        layout: DisplayLayout = (
            "curtain"
            if want == "curtain"
            else "mirror"
            if want == "mirror"
            else "confidential"
            if want == "confidential"
            else "extended"
        )
        shown = Rect(0, 0, mode.width, mode.height) if want == "curtain" and alone is citizen else None
        covered = Rect(0, 0, mode.width, mode.height) if want == "confidential" and alone is agent else None
        return Plan(layout, args, curtain=shown, agent_curtain=covered, detail=f"{missing} output not connected")

    best = agent.best()
    assert best is not None
    same = citizen.of_size(best.size)
    common = sorted(
        (m for m in agent.modes if citizen.of_size(m.size) is not None),
        key=lambda m: (m.width * m.height, m.width),
        reverse=True,
    )
    if same is not None:
        agent_mode, citizen_mode, detail = best, same, ""
    elif common:
        agent_mode, citizen_mode = common[0], citizen.of_size(common[0].size) or common[0]
        detail = f"the citizen output has no {best} mode: mirror at {agent_mode}, the largest mode both share"
    else:
        agent_mode, citizen_mode, detail = best, citizen.best() or best, ""

    def beside(layout: DisplayLayout, why: str) -> Plan:
        args = place(agent, agent_mode, 0) + place(citizen, citizen_mode, agent_mode.width, *plain) + others
        curtain = Rect(agent_mode.width, 0, citizen_mode.width, citizen_mode.height) if layout == "curtain" else None
        return Plan(layout, args, curtain=curtain, detail=why)

    if want == "confidential":
        args = place(citizen, citizen_mode, 0, *plain) + place(agent, agent_mode, citizen_mode.width) + others
        cover = Rect(citizen_mode.width, 0, agent_mode.width, agent_mode.height)
        return Plan("confidential", args, agent_curtain=cover, detail=detail)
    if want in ("curtain", "extended"):
        return beside(want, "" if want == "curtain" or same or common else f"no mode in common ({detail})")
    if same is None and not common:
        no_common = f"no mode in common: agent {best}, citizen {citizen_mode}; side by side"
        mirrored = None
    else:
        mirrored = Plan(
            "mirror", place(agent, agent_mode, 0) + place(citizen, citizen_mode, 0, *plain) + others, detail=detail
        )
    if same is None and not scaling_refused:
        target = citizen.best()
        assert target is not None
        scaled = Plan(
            "mirror",
            place(agent, best, 0) + place(citizen, target, 0, "--scale-from", str(best)) + others,
            detail=f"citizen output scaled from {best} to {target}",
            fallback=mirrored if mirrored is not None else beside("extended", no_common),
            scaled=True,
        )
        return scaled
    return mirrored if mirrored is not None else beside("extended", no_common)


def signature(outputs: Sequence[Seen]) -> tuple[tuple[str, bool, tuple[int, ...]], ...]:
    """What decides a layout: which outputs are connected, with which modes (not where they are now)."""
    return tuple((out.name, out.connected, tuple(mode.id for mode in out.modes)) for out in outputs)


# --------------------------------------------------------------------------------------------------- the curtain
def render_curtain(width: int, height: int, text: str, font_file: str = "") -> Image.Image:
    """The citizen's neutral page: a three-band disc and the text, centred on a plain background."""
    image = Image.new("RGB", (width, height), CURTAIN_BACKGROUND)
    radius = max(4, min(width, height) // 8)
    logo = Image.new("RGB", (2 * radius, 2 * radius))
    for number, colour in enumerate(LOGO_COLOURS):
        logo.paste(colour, (number * 2 * radius // 3, 0, (number + 1) * 2 * radius // 3, 2 * radius))
    disc = Image.new("L", logo.size, 0)
    ImageDraw.Draw(disc).ellipse((0, 0, 2 * radius - 1, 2 * radius - 1), fill=255)
    centre_y = height // 2 - radius // 2
    image.paste(logo, (width // 2 - radius, centre_y - radius), disc)
    draw = ImageDraw.Draw(image)
    size = max(8, height // 18)
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(font_file, size)
    except OSError:  # Pillow's own font has no "î": only a fallback (fonts-dejavu-core is in every Debian image)
        font = ImageFont.load_default(size=size)
    box = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (box[2] - box[0])) // 2, centre_y + radius + height // 16), text, fill=CURTAIN_INK, font=font)
    return image


# --------------------------------------------------------------------------------------------------- the backend
class XrandrDisplays:
    """A ``Displays`` backend on an X server with RandR 1.3+ (Xorg with modesetting, amdgpu, intel or video-dummy)."""

    options_model: ClassVar[type[XrandrOptions]] = XrandrOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit = ctx.emit
        self._state = DisplaysState(detail="not started")
        self._mirror = True
        self._privacy = False
        self._powered = False
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # worker-thread side
        self._display: display.Display | None = None
        self._root: Window | None = None
        self._curtain = Curtain("kioskd curtain", self.options.curtain_text)
        self._agent_curtain = Curtain("kioskd agent curtain", self.options.agent_curtain_text)
        self._confidential = False
        self._owner: Window | None = None
        self._signature: tuple[Any, ...] = ()
        self._scaling_refused: tuple[Any, ...] | None = None  # the signature on which scaling was refused
        self._settle_at: float | None = None
        self._randr_event = 0  # RandR's first event code on this server
        self._commanded = False  # no layout is imposed before the station's first command
        self._reconnect_at = 0.0
        self._connected = threading.Event()

    @property
    def state(self) -> DisplaysState:
        return self._state

    # ------------------------------------------------------------------------------------------- loop side
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="displays-xrandr", daemon=True)
        self._thread.start()
        # The first connection is awaited (bounded) so that the station's first command finds the outputs read.
        await asyncio.get_running_loop().run_in_executor(None, self._connected.wait, self.options.timeout)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        await asyncio.get_running_loop().run_in_executor(None, thread.join, self.options.timeout)

    async def set_mirror(self, on: bool) -> None:
        await self._call(lambda: self._x_want(mirror=on, privacy=False if on else self._privacy))

    async def set_curtain(self, on: bool) -> None:
        await self._call(lambda: self._x_want(privacy=on))

    async def set_power(self, on: bool) -> None:
        await self._call(lambda: self._x_want(powered=on))

    async def set_agent_curtain(self, on: bool) -> None:
        await self._call(lambda: self._x_want(confidential=on))

    async def clear_clipboard(self) -> None:
        await self._call(self._x_clear_clipboard)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise DeviceError("the displays backend is not started", where="displays")
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
                readable = self._wait()
                if self._wake_r in readable:
                    os.read(self._wake_r, 4096)
                try:
                    self._x_calls()
                    self._x_events()
                    if self._settle_at is not None and time.monotonic() >= self._settle_at:
                        self._settle_at = None
                        self._x_outputs_changed()
                except (error.ConnectionClosedError, OSError) as exc:
                    self._x_lost(exc)
        finally:
            self._x_disconnect()
            self._fail_calls()

    def _wait(self) -> list[Any]:
        """What is readable: the wake pipe, the X socket. Nothing, when python-xlib already read events off the
        socket (select would not see them): they are handled at once, and the wake pipe is not read, or the
        worker would block on it until the next call while an app waits for its paste to be answered."""
        fds: list[Any] = [self._wake_r]
        if self._display is not None:
            if self._display.pending_events():
                return []
            fds.append(self._display)
        deadlines = [d for d in (self._settle_at, None if self._display else self._reconnect_at) if d is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        return select.select(fds, [], [], timeout)[0]

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
                        "the X server is not reachable", where="displays", action="check the X session of the station"
                    )
                future.set_result(fn())
            except (error.ConnectionClosedError, OSError) as exc:
                future.set_exception(DeviceError(f"X connection lost: {exc}", where="displays"))
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
                future.set_exception(DeviceError("the displays backend is closed", where="displays"))

    def _x_connect(self) -> None:
        if self.options.xauthority:
            os.environ["XAUTHORITY"] = self.options.xauthority  # python-xlib reads the file named here
        try:
            d = display.Display(self.options.display)
            extension = d.query_extension("RANDR")
            if extension is None:
                d.close()
                raise DeviceError("the X server has no RandR", where="displays")
        except (error.DisplayError, error.ConnectionClosedError, OSError, DeviceError) as exc:
            if self._state.detail != "X server not reachable":
                log.warning("displays: cannot reach the X server %s: %s", self.options.display, exc)
            self._publish(DisplaysState(detail="X server not reachable"))
            self._reconnect_at = time.monotonic() + self.options.reconnect
            self._connected.set()
            return
        self._display = d
        self._randr_event = extension.first_event
        d.set_error_handler(self._x_error)
        root = d.screen().root
        self._root = root
        root.xrandr_select_input(
            randr.RRScreenChangeNotifyMask | randr.RROutputChangeNotifyMask | randr.RRCrtcChangeNotifyMask
        )
        root.change_attributes(event_mask=X.SubstructureNotifyMask)  # to keep the curtain on top
        self._owner = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly, X.CopyFromParent)
        self._signature = ()
        log.info("displays: connected to X display %s", self.options.display)
        if self._commanded:
            self._x_apply()  # back after losing the server: the layout the station asked for
        else:
            self._x_observe()
        self._connected.set()

    def _x_error(self, err: error.XError, request: Any) -> None:
        log.warning("displays: X error %s", err)

    def _x_lost(self, exc: BaseException) -> None:
        log.warning("displays: X connection lost: %s", exc)
        self._x_disconnect()
        self._publish(DisplaysState(curtain=self._privacy, detail="X server not reachable"))
        self._reconnect_at = time.monotonic() + self.options.reconnect

    def _x_disconnect(self) -> None:
        d, self._display = self._display, None
        self._root = self._owner = None
        self._curtain.forget()
        self._agent_curtain.forget()
        if d is not None:
            with contextlib.suppress(Exception):
                d.close()

    # ------------------------------------------------------------------------------------------- reading
    def _x_read(self, probe: bool) -> list[Seen]:
        """The outputs now. ``probe`` asks the driver to look at the connectors again (slower: EDID reads)."""
        assert self._display is not None and self._root is not None
        d, root = self._display, self._root
        res = randr.get_screen_resources(root) if probe else randr.get_screen_resources_current(root)
        modes = {m.id: Mode(m.id, m.width, m.height) for m in res.modes}
        primary = randr.get_output_primary(root).output
        seen = []
        for output in res.outputs:
            info = d.xrandr_get_output_info(output, res.config_timestamp)
            crtc = d.xrandr_get_crtc_info(info.crtc, res.config_timestamp) if info.crtc else None
            lit = crtc is not None and crtc.mode != 0
            seen.append(
                Seen(
                    name=str(info.name),
                    connected=info.connection == randr.Connected,
                    modes=tuple(modes[m] for m in info.modes if m in modes),
                    preferred=info.num_preferred,
                    primary=output == primary,
                    lit=lit,
                    x=crtc.x if crtc is not None and lit else 0,
                    y=crtc.y if crtc is not None and lit else 0,
                    width=crtc.width if crtc is not None and lit else 0,
                    height=crtc.height if crtc is not None and lit else 0,
                )
            )
        return seen

    def _want(self) -> Want:
        if not self._powered:
            return "off"
        if self._privacy:
            return "curtain"
        return "confidential" if self._confidential else "mirror" if self._mirror else "extended"

    # ------------------------------------------------------------------------------------------- layouts
    def _x_want(self, **changes: bool) -> None:
        self._commanded = True
        self._mirror = changes.get("mirror", self._mirror)
        self._privacy = changes.get("privacy", self._privacy)
        self._powered = changes.get("powered", self._powered)
        self._confidential = changes.get("confidential", self._confidential)
        self._x_apply()

    def _x_apply(self) -> None:
        seen = self._x_read(probe=True)
        sig = signature(seen)
        agent, citizen = roles(seen, self.options.agent, self.options.citizen)
        plan = plan_layout(seen, agent, citizen, self._want(), self._scaling_refused == sig)
        if plan.fallback is not None and self._scaling_refused == sig:
            plan = plan.fallback
        try:
            self._x_run(plan)
        except DeviceError as exc:
            if plan.fallback is None:
                raise
            log.warning("displays: %s refused (%s): %s", plan.detail, exc.what, plan.fallback.detail or "fallback")
            self._scaling_refused = sig
            plan = plan.fallback
            self._x_run(plan)
        if plan.detail:
            log.info("displays: %s: %s", plan.layout, plan.detail)
        after = self._x_read(probe=False)
        self._signature = signature(after)
        self._x_publish(after, plan)
        if self._powered and not self._privacy:
            ahead = plan_layout(after, agent, citizen, "curtain", scaling_refused=True)
            if ahead.curtain is not None:
                self._x_prepare_curtain(self._curtain, ahead.curtain)
            if not self._confidential:
                ahead = plan_layout(after, agent, citizen, "confidential", scaling_refused=True)
                if ahead.agent_curtain is not None:
                    self._x_prepare_curtain(self._agent_curtain, ahead.agent_curtain)

    def _x_run(self, plan: Plan) -> None:
        if plan.curtain is not None:
            self._x_show_curtain(self._curtain, plan.curtain)  # before the move: the citizen never sees the picture
        if plan.agent_curtain is not None:
            self._x_show_curtain(self._agent_curtain, plan.agent_curtain)  # the same for the agent's screen
        self._xrandr(plan.args)
        if plan.curtain is None:
            self._x_hide_curtain(self._curtain)
        if plan.agent_curtain is None:
            self._x_hide_curtain(self._agent_curtain)

    def _xrandr(self, args: Sequence[str]) -> None:
        if not args:
            return
        program = shutil.which(self.options.xrandr) or self.options.xrandr
        env = {**os.environ, "DISPLAY": self.options.display}
        if self.options.xauthority:
            env["XAUTHORITY"] = self.options.xauthority
        try:
            done = subprocess.run(
                [program, *args], env=env, capture_output=True, text=True, timeout=self.options.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeviceError(f"xrandr failed: {exc}", where="displays", action="install x11-xserver-utils") from exc
        if done.returncode != 0:
            first = next((line for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
            raise DeviceError(f"xrandr refused the layout: {first.strip()}", where="displays")

    def _x_publish(self, seen: Sequence[Seen], plan: Plan) -> None:
        agent, citizen = roles(seen, self.options.agent, self.options.citizen)
        by_name = {out.name: out for out in seen}

        def output(name: str, role: OutputRole) -> Output:
            out = by_name.get(name, Seen(name, False))
            return Output(name, role, out.connected, out.width, out.height, out.x, out.y)

        pairs: tuple[tuple[str | None, OutputRole], ...] = ((agent, "agent"), (citizen, "citizen"))
        outputs = [output(name, role) for name, role in pairs if name is not None]
        outputs += [output(o.name, "other") for o in seen if o.connected and o.name not in (agent, citizen)]
        if citizen is None:
            outputs.append(Output(self.options.citizen or "", "citizen", False))
        self._publish(
            DisplaysState(
                outputs=tuple(outputs),
                mirrored=plan.layout == "mirror" and by_name.get(citizen or "", Seen("", False)).connected,
                curtain=self._privacy,
                agent_curtain=plan.agent_curtain is not None,
                powered=plan.layout != "off",
                layout=plan.layout,
                detail=plan.detail,
            )
        )

    def _publish(self, state: DisplaysState) -> None:
        before = {(o.role, o.name): o.connected for o in self._state.outputs}
        if self._state.detail != "not started":  # the first reading is not a plug
            for out in state.outputs:
                if out.role in ("agent", "citizen") and before.get((out.role, out.name), False) != out.connected:
                    self._emit(
                        OutputConnected(out.name, out.role) if out.connected else OutputDisconnected(out.name, out.role)
                    )
            names = {(o.role, o.name) for o in state.outputs}
            for (role, name), was in before.items():
                if was and role in ("agent", "citizen") and (role, name) not in names:
                    self._emit(OutputDisconnected(name, role))
        if state != self._state:
            self._state = state
            self._emit(DisplaysChanged(state))

    # ------------------------------------------------------------------------------------------- events
    def _x_events(self) -> None:
        d = self._display
        if d is None:
            return
        while d.pending_events():
            ev = d.next_event()
            # python-xlib registers copies of its RandR event classes per display: match the codes, not the classes
            if ev.type in (self._randr_event + randr.RRScreenChangeNotify, self._randr_event + randr.RRNotify):
                self._settle_at = time.monotonic() + HOTPLUG_SETTLE
            elif isinstance(ev, (xevent.MapNotify, xevent.ConfigureNotify)):
                for curtain in (self._curtain, self._agent_curtain):
                    if curtain.shown and curtain.window is not None and ev.window != curtain.window:
                        curtain.window.configure(stack_mode=X.Above)
            elif isinstance(ev, xevent.SelectionRequest):
                self._x_answer_selection(ev)

    def _x_outputs_changed(self) -> None:
        seen = self._x_read(probe=True)
        if signature(seen) == self._signature:
            return  # our own layout change, or a move that changes nothing we decide on
        log.info("displays: outputs changed: %s", ", ".join(o.name for o in seen if o.connected) or "none connected")
        if self._commanded:
            self._x_apply()
        else:
            self._x_observe()

    def _x_observe(self) -> None:
        """Before the station's first command the screens stay as the session left them (the agent may be reading
        something): they are only read, and the layout named from where the outputs are."""
        seen = self._x_read(probe=True)
        self._signature = signature(seen)
        agent, citizen = roles(seen, self.options.agent, self.options.citizen)
        lit = {out.name: (out.x, out.y) for out in seen if out.lit}
        layout: DisplayLayout = (
            "off"
            if not lit
            else "mirror"
            if agent in lit and citizen in lit and lit[agent] == lit[citizen]
            else "extended"
            if agent in lit and citizen in lit
            else "mirror"
        )
        self._x_publish(seen, Plan(layout, ()))

    # ------------------------------------------------------------------------------------------- curtain
    def _x_show_curtain(self, curtain: Curtain, rect: Rect) -> None:
        assert self._display is not None
        window = self._x_prepare_curtain(curtain, rect)
        window.configure(x=rect.x, y=rect.y, width=rect.width, height=rect.height, stack_mode=X.Above)
        window.map()
        curtain.shown = True
        self._display.sync()

    def _x_prepare_curtain(self, curtain: Curtain, rect: Rect) -> Window:
        """The curtain window, painted for ``rect``'s size, unmapped: drawing a full-HD picture through python-xlib
        takes a tenth of a second, so it is done when a layout is applied, not when the agent presses."""
        assert self._display is not None and self._root is not None
        d, root = self._display, self._root
        if curtain.window is None:
            curtain.window = root.create_window(
                rect.x,
                rect.y,
                rect.width,
                rect.height,
                0,
                d.screen().root_depth,
                X.InputOutput,
                X.CopyFromParent,
                override_redirect=True,
                background_pixel=_pixel(CURTAIN_BACKGROUND),
            )
            curtain.window.set_wm_name(curtain.name)
        if curtain.size != (rect.width, rect.height):
            self._x_paint_curtain(curtain, rect.width, rect.height)
        return curtain.window

    def _x_hide_curtain(self, curtain: Curtain) -> None:
        if curtain.window is not None and curtain.shown and self._display is not None:
            curtain.window.unmap()
            self._display.sync()
        curtain.shown = False

    def _x_paint_curtain(self, curtain: Curtain, width: int, height: int) -> None:
        """The curtain picture as the window's background pixmap, sent in strips (no BIG-REQUESTS in python-xlib)."""
        assert self._display is not None and self._root is not None and curtain.window is not None
        d, root = self._display, self._root
        depth = d.screen().root_depth
        msb = d.display.info.image_byte_order == X.MSBFirst
        data = render_curtain(width, height, curtain.text, self.options.curtain_font).tobytes(
            "raw", "XRGB" if msb else "BGRX"
        )
        pixmap = root.create_pixmap(width, height, depth)
        gc = pixmap.create_gc()
        rows = max(1, (d.display.info.max_request_length * 4 - 64) // (width * 4))
        for top in range(0, height, rows):
            count = min(rows, height - top)
            strip = data[top * width * 4 : (top + count) * width * 4]
            pixmap.put_image(gc.id, 0, top, width, count, X.ZPixmap, depth, 0, strip)
        gc.free()
        curtain.window.change_attributes(background_pixmap=pixmap)
        curtain.window.clear_area()
        if curtain.pixmap is not None:
            curtain.pixmap.free()
        curtain.pixmap, curtain.size = pixmap, (width, height)

    # ------------------------------------------------------------------------------------------- clipboard
    def _x_clear_clipboard(self) -> None:
        """Own CLIPBOARD and PRIMARY: their owners drop what they held, and we serve only empty text from now on."""
        assert self._display is not None and self._owner is not None
        d = self._display
        for name in ("CLIPBOARD", "PRIMARY"):
            selection = d.intern_atom(name)
            self._owner.set_selection_owner(selection, X.CurrentTime)
            d.sync()
            owner: Any = d.get_selection_owner(selection)  # a Window at run time, whatever the stubs say
            if getattr(owner, "id", owner) != self._owner.id:
                raise DeviceError(f"could not take the {name} selection", where="displays.clipboard")

    def _x_answer_selection(self, ev: Any) -> None:
        assert self._display is not None
        d = self._display
        targets, utf8 = d.intern_atom("TARGETS"), d.intern_atom("UTF8_STRING")
        texts = {utf8, Xatom.STRING, d.intern_atom("TEXT")}
        prop = ev.property or ev.target
        if ev.target == targets:
            ev.requestor.change_property(prop, Xatom.ATOM, 32, [targets, utf8, Xatom.STRING])
        elif ev.target in texts:
            ev.requestor.change_property(prop, utf8 if ev.target != Xatom.STRING else Xatom.STRING, 8, b"")
        else:
            prop = X.NONE
        reply = xevent.SelectionNotify(
            time=ev.time, requestor=ev.requestor, selection=ev.selection, target=ev.target, property=prop
        )
        ev.requestor.send_event(reply)
        d.flush()


@dataclass
class Curtain:
    """One curtain window (the citizen's, the agent's) and its painted background, owned by the worker thread."""

    name: str
    text: str
    window: Window | None = None
    pixmap: Pixmap | None = None
    size: tuple[int, int] | None = None
    shown: bool = False

    def forget(self) -> None:
        """The X connection is gone, and with it every resource."""
        self.window, self.pixmap, self.size, self.shown = None, None, None, False


def _pixel(rgb: tuple[int, int, int]) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
