"""A private Xorg with the video-dummy driver (16 RandR outputs, DUMMY0 connected) for the displays tests, with
the tools to look at it: xrandr, screenshots through ``xwd -root``, and a window with a known pattern.

Xorg picks a free display number itself (``-displayfd``: other Xorg servers may run on this machine), writes its log
in the test's directory, and is stopped by its PID even when the test fails. On video-dummy an output becomes
"connected" the first time a mode is set on it (that is how a test plugs a screen in) and never disconnects."""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from Xlib import X, display

from tests.integration import require

# The dummy driver offers its whole built-in VESA list (up to 2048x1536) to every connected output whatever "Modes"
# says; a test that needs a mode only one output has adds it (``add_wide_mode``).
CONFIG = """\
Section "Device"
    Identifier "dummy"
    Driver     "dummy"
    VideoRam   256000
EndSection
Section "Monitor"
    Identifier  "monitor"
    HorizSync   5.0 - 1000.0
    VertRefresh 5.0 - 200.0
EndSection
Section "Screen"
    Identifier "screen"
    Device     "dummy"
    Monitor    "monitor"
    DefaultDepth 24
    SubSection "Display"
        Depth   24
        Virtual 5120 2880
    EndSubSection
EndSection
Section "ServerFlags"
    Option "AutoAddDevices" "false"
    Option "AutoEnableDevices" "false"
    Option "DontVTSwitch" "true"
EndSection
"""
# A mode the agent's screen has and the citizen's may lack (added per output with --newmode/--addmode).
WIDE = ("2560x1440", "241.50", "2560", "2608", "2640", "2720", "1440", "1443", "1448", "1481", "+hsync", "-vsync")


class XServer:
    def __init__(self, directory: Path, extra_config: str = "") -> None:
        self.directory = directory
        self.xorg = require.binary("Xorg", "xserver-xorg-core xserver-xorg-video-dummy")
        self.xrandr_bin = require.binary("xrandr", "x11-xserver-utils")
        self.xwd_bin = require.binary("xwd", "x11-apps")
        config = directory / "xorg-dummy.conf"
        config.write_text(CONFIG + extra_config)  # extra: input devices (tests/integration/test_inputs_xinput.py)
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            [
                "/usr/lib/xorg/Xorg" if os.path.exists("/usr/lib/xorg/Xorg") else self.xorg,
                "-displayfd",
                str(write_end),
                "-noreset",
                "-nolisten",
                "tcp",
                "-config",
                str(config),
                "-logfile",
                str(directory / "xorg.log"),
            ],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(write_end)
        try:
            number = self._read_display(read_end)
        except Exception:
            self.stop()
            raise
        finally:
            os.close(read_end)
        self.display = f":{number}"
        self.env = {**os.environ, "DISPLAY": self.display}
        self.env.pop("XAUTHORITY", None)

    def _read_display(self, fd: int) -> str:
        deadline = time.monotonic() + 15
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                log = (self.directory / "xorg.log").read_text(errors="replace")[-2000:] if self.directory else ""
                raise AssertionError(f"Xorg did not start (exit {self.process.poll()}):\n{log}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 64)
                if not chunk and self.process.poll() is not None:
                    continue
                data += chunk
        return data.decode().strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    # ------------------------------------------------------------------------------------------- xrandr
    def xrandr(self, *args: str) -> str:
        done = subprocess.run([self.xrandr_bin, *args], env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"xrandr {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def monitors(self) -> dict[str, tuple[int, int, int, int]]:
        """Lit outputs as ``xrandr --listmonitors`` sees them: name → (width, height, x, y)."""
        lit = {}
        for line in self.xrandr("--listmonitors").splitlines()[1:]:
            fields = line.split()
            geometry, name = fields[2], fields[3]
            size, x, y = geometry.split("+")
            width, height = (int(part.split("/")[0]) for part in size.split("x"))
            lit[name] = (width, height, int(x), int(y))
        return lit

    def plug(self, output: str, mode: str = "1920x1080", right_of: str = "DUMMY0") -> None:
        """A screen plugged in: on video-dummy, an output connects when a mode is first set on it."""
        self.xrandr("--addmode", output, mode)
        self.xrandr("--output", output, "--mode", mode, "--right-of", right_of)

    def add_wide_mode(self, *outputs: str) -> None:
        if "2560x1440" not in self.xrandr("--verbose"):
            self.xrandr("--newmode", *WIDE)
        for output in outputs:
            self.xrandr("--addmode", output, WIDE[0])

    # ------------------------------------------------------------------------------------------- pixels
    def screenshot(self) -> Image.Image:
        """The whole framebuffer, as ``xwd -root`` dumps it (every output is a rectangle of it)."""
        done = subprocess.run([self.xwd_bin, "-root", "-silent"], env=self.env, capture_output=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"xwd failed: {done.stderr.decode(errors='replace').strip()}")
        return parse_xwd(done.stdout)

    def crop(self, shot: Image.Image, output: str) -> Image.Image:
        width, height, x, y = self.monitors()[output]
        return shot.crop((x, y, x + width, y + height))


def parse_xwd(data: bytes) -> Image.Image:
    """An XWD dump (X11 window dump, version 7, 32-bit ZPixmap TrueColor) as an RGB image."""
    header = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format, depth, width, height = header[:6]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = header[7], header[11], header[12], header[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel != 32 or depth != 24:
        raise AssertionError(f"unexpected XWD: version {version}, format {pixmap_format}, {depth}/{bits_per_pixel}")
    start = header_size + 12 * ncolors
    raw = data[start : start + bytes_per_line * height]
    return Image.frombuffer(
        "RGB", (width, height), raw, "raw", "BGRX" if byte_order == 0 else "XRGB", bytes_per_line, 1
    )


class Pattern:
    """A window with four coloured quadrants: "the agent's picture", painted by the X server from its background."""

    COLOURS = ((200, 30, 30), (30, 160, 60), (40, 70, 220), (230, 200, 40))

    def __init__(self, server: XServer, width: int, height: int, x: int = 0, y: int = 0) -> None:
        self.connection = display.Display(server.display)
        screen = self.connection.screen()
        self.window = screen.root.create_window(
            x, y, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent, background_pixel=0
        )
        for number, (r, g, b) in enumerate(self.COLOURS):
            child = self.window.create_window(
                (number % 2) * (width // 2),
                (number // 2) * (height // 2),
                width // 2,
                height // 2,
                0,
                screen.root_depth,
                X.InputOutput,
                X.CopyFromParent,
                background_pixel=(r << 16) | (g << 8) | b,
            )
            child.map()
        self.window.map()
        self.connection.sync()

    def colours(self, image: Image.Image) -> list[tuple[int, int, int]]:
        """The colour at the middle of each quadrant of ``image``."""
        width, height = image.size
        points = [(width // 4, height // 4), (3 * width // 4, height // 4)]
        points += [(width // 4, 3 * height // 4), (3 * width // 4, 3 * height // 4)]
        return [image.getpixel(point) for point in points]  # type: ignore[misc]

    def close(self) -> None:
        self.connection.close()


@contextmanager
def running_xorg(directory: Path, extra_config: str = "") -> Iterator[XServer]:
    server = XServer(directory, extra_config)
    try:
        yield server
    finally:
        server.stop()
