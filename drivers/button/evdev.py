"""The station's button as a USB key on an x86 mini-PC (python-evdev): a one-key USB "big button" or a foot switch.

The device is found by its udev properties (vendor/model or the USB port's ID_PATH), never by /dev/input/eventN,
which changes with each plug; a pyudev monitor opens it again after a replug. Both the monitor and the device are
non-blocking file descriptors watched by the event loop (no thread). The key is grabbed: it must never reach the
session app as a keystroke. Such a button has no LED: the pattern is only recorded in the state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any, ClassVar

import evdev
import pyudev
from evdev import ecodes
from pydantic import Field, field_validator

from drivers.button.press import PressTiming
from kioskd.hal import ButtonState, DriverContext, DriverOptions, LedPattern

log = logging.getLogger(__name__)

KEY_UP, KEY_DOWN = 0, 1  # value 2 is the keyboard's auto-repeat: not a new press


class EvdevButtonOptions(DriverOptions):
    match: dict[str, str] = Field(
        min_length=1,
        description="udev properties the input device must all have, e.g. "
        "{ ID_VENDOR_ID = '1209', ID_MODEL_ID = 'b0b0' } or { ID_PATH = 'pci-0000:00:14.0-usb-0:3:1.0' }",
    )
    key: str = Field("KEY_ENTER", description="the key the button sends, as evdev names it (KEY_ENTER, KEY_F13 …)")
    hold_time: float = Field(3.0, ge=0.5, le=30, description="seconds of a long press (end of day)")
    grab: bool = Field(True, description="take the device for kioskd alone (its key never reaches the session app)")

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str) -> str:
        if not isinstance(ecodes.ecodes.get(value), int) or not value.startswith(("KEY_", "BTN_")):
            raise ValueError(f"unknown key {value!r}: use an evdev name such as KEY_ENTER or BTN_0 (see evtest)")
        return value


def matches(properties: Any, wanted: dict[str, str]) -> bool:
    return all(properties.get(name) == value for name, value in wanted.items())


class KeyPresses:
    """Key events → presses, timed by the kernel's event times (``PressTiming`` decides short or long)."""

    def __init__(self, code: int, timing: PressTiming) -> None:
        self.code = code
        self.timing = timing

    def feed(self, event: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if event.type != ecodes.EV_KEY or event.code != self.code:
            return
        if event.value == KEY_DOWN:
            # the hold timer counts from now: the event's stamp may be on another clock (wall, monotonic, a replay)
            self.timing.down(event.timestamp(), loop)
        elif event.value == KEY_UP:
            self.timing.up(event.timestamp())


class EvdevButton:
    """A ``Button`` backend for a USB key."""

    options_model: ClassVar[type[EvdevButtonOptions]] = EvdevButtonOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._timing = PressTiming(self.options.hold_time, ctx.emit, ButtonState())
        self._keys = KeyPresses(ecodes.ecodes[self.options.key], self._timing)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: Any = None
        self._monitor: Any = None
        self._device: Any = None
        self._node: str | None = None

    @property
    def state(self) -> ButtonState:
        return self._timing.state

    @property
    def node(self) -> str | None:
        """The /dev/input/eventN open now (it changes with each plug)."""
        return self._node

    async def start(self) -> None:
        if self._monitor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(self._context)
        self._monitor.filter_by("input")
        self._monitor.start()  # before listing: a plug between the two is not lost
        self._loop.add_reader(self._monitor.fileno(), self._udev_event)
        for device in self._context.list_devices(subsystem="input"):
            if self._wanted(device):
                self._open(device.device_node)
                break
        if self._device is None:
            log.warning("button: no input device matches %s yet; waiting for it", self.options.match)

    async def close(self) -> None:
        self._drop()
        if self._monitor is not None and self._loop is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

    async def set_led(self, pattern: LedPattern) -> None:
        self._timing.set_state(replace(self.state, led=pattern))

    # ------------------------------------------------------------------------------------------- plugging
    def _wanted(self, device: Any) -> bool:
        node = device.device_node or ""
        return node.startswith("/dev/input/event") and matches(device.properties, self.options.match)

    def _udev_event(self) -> None:
        while (device := self._monitor.poll(timeout=0)) is not None:
            if device.action == "remove" and device.device_node is not None and device.device_node == self._node:
                log.info("button unplugged")
                self._drop()
            elif device.action in ("add", "change") and self._device is None and self._wanted(device):
                self._open(device.device_node)

    def _open(self, node: str) -> None:
        assert self._loop is not None
        try:
            device = evdev.InputDevice(node)
        except OSError as exc:
            log.warning("button: cannot open its input device: %s", exc.strerror)
            return
        if self.options.grab:
            try:
                device.grab()
            except OSError as exc:  # still usable; the key may also reach the session app
                log.warning("button: cannot grab its input device: %s", exc.strerror)
        self._device, self._node = device, node
        self._loop.add_reader(device.fd, self._readable)
        self._timing.set_state(replace(self.state, present=True))
        log.info("button: %s on %s", device.name, node)

    def _drop(self) -> None:
        device, self._device, self._node = self._device, None, None
        if device is not None:
            if self._loop is not None:
                self._loop.remove_reader(device.fd)
            with contextlib.suppress(OSError):  # already gone with the plug
                device.close()
        self._timing.forget()
        self._timing.set_state(replace(self.state, present=False))

    def _readable(self) -> None:
        device = self._device
        if device is None:
            return
        try:
            for event in device.read():
                self._keys.feed(event, self._loop)
        except BlockingIOError:
            return
        except OSError:  # ENODEV: unplugged; the udev remove follows (or already came)
            self._drop()
