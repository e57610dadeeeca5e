"""Input devices for the private Xorg of the display tests: Xorg's own ``inputtest`` driver (part of
xserver-xorg-core 21.1) makes real X input devices (a keyboard, a relative pointer, an absolute pointer like a
touchscreen or qemu's usb-tablet) whose events a test writes to a socket, so "Device Enabled" and the
"Coordinate Transformation Matrix" are the X server's own, and a mapped touch lands where the server puts it.
There is no ``/dev/uinput`` on this kernel, so no evdev or libinput device (and no udev "Device Node") can be made.

The protocol is xf86-input-inputtest-protocol.h (version 1.1): a client version, then events; a "wait for sync"
answered once the server has processed everything before it. A device turned off closes its client's socket."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

CLIENT_VERSION, WAIT_FOR_SYNC, MOTION, KEY = 0, 1, 2, 5
MAX_VALUATORS = 64
VALUATORS = f"=I{(MAX_VALUATORS + 7) // 8}s4x{MAX_VALUATORS}d{MAX_VALUATORS}d"  # xf86ITValuatorData, C-aligned
ABS_MAX = 65535  # the inputtest driver's absolute axes run 0..65535


@dataclass(frozen=True)
class Fake:
    """One device of the server's configuration: its X name, the driver's device type and its socket."""

    name: str
    kind: str  # Keyboard, Pointer, PointerAbsolute
    socket: Path

    def section(self) -> str:
        return (
            f'Section "InputDevice"\n    Identifier "{self.name}"\n    Driver "inputtest"\n'
            f'    Option "SocketPath" "{self.socket}"\n    Option "DeviceType" "{self.kind}"\nEndSection\n'
        )


def config(devices: list[Fake]) -> str:
    """The xorg.conf sections that add ``devices`` to the display tests' server (its Screen is "screen")."""
    inputs = "".join(f'    InputDevice "{d.name}"\n' for d in devices)
    layout = f'Section "ServerLayout"\n    Identifier "layout"\n    Screen "screen"\n{inputs}EndSection\n'
    return "".join(d.section() for d in devices) + layout


class Client:
    """A connection to one inputtest device: absolute motions and keys, each followed by a sync."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.sock.sendall(struct.pack("=IIHH", 12, CLIENT_VERSION, 1, 1))
        self._read(12)

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the inputtest device closed the connection (turned off)")
            data += chunk
        return data

    def sync(self) -> None:
        self.sock.sendall(struct.pack("=II", 8, WAIT_FOR_SYNC))
        self._read(8)

    def move_to(self, x: float, y: float) -> None:
        """An absolute motion, in the device's range (0..ABS_MAX on both axes)."""
        values = [0.0] * MAX_VALUATORS
        values[0], values[1] = x, y
        body = struct.pack(VALUATORS, 0, bytes([0b11]) + bytes(7), *values, *([0.0] * MAX_VALUATORS))
        event = struct.pack("=III4x", 16 + len(body), MOTION, 1) + body
        self.sock.sendall(event)
        self.sync()

    def close(self) -> None:
        self.sock.close()
