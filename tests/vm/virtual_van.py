"""The virtual van: the disk image booted in qemu (UEFI through OVMF) with the hardware a van has, driven only from
outside — QMP (keys, screenshots, power), the serial console, the QEMU guest agent's virtio channel, a VNC client per
screen (it plugs the screen in) and the emulated USB serial cable fed with VE.Direct text.

It must not reach into the guest any other way (no shared folder, no ssh): what the tests see is what a van shows.
qemu is started by PID and killed by PID, whatever happens to the test."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from drivers.power.vedirect_protocol import encode_block

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
QEMU = "qemu-system-x86_64"
HEAD_SIZE = (1280, 800)
PANEL_BLUE = (0, 0, 145)  # the panel's header (--blue: #000091), where its state and its one action are
CURTAIN = (31, 42, 68)  # drivers/display/xrandr.py CURTAIN_BACKGROUND
ANSI = re.compile(r"\x1b(?:\[[0-9;=?]*[A-Za-z]|[A-Za-z])")  # virtio-gpu's default mode for both heads


class VanError(AssertionError):
    """The virtual van did not do what the test waited for; the message carries the end of the serial console."""


def kvm_works(seconds: float = 8.0) -> bool:
    """KVM only when a guest really runs under it: /dev/kvm exists here, but a nested guest dies in OVMF ("KVM
    internal error ... emulation failure"). The probe runs OVMF alone under KVM for a few seconds and looks for that."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kvm-probe-")))
        shutil.copyfile(OVMF_VARS, work / "vars.fd")
        probe = subprocess.Popen(
            [
                QEMU, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "256", "-nodefaults", "-display",
                "none", "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={work / 'vars.fd'}",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = probe.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            probe.kill()
            out, _ = probe.communicate()
            return b"KVM internal error" not in out and b"emulation failure" not in out
        return False  # qemu ended by itself: KVM refused or failed


# --------------------------------------------------------------------------------------------------- channels
class Qmp:
    """A QMP connection (commands answered in order; events kept for ``events``)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(60)  # a qemu whose main loop is stuck must not hang the test
        self.file = self.sock.makefile("rwb")
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._read()  # the greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def command(self, name: str, **arguments: Any) -> Any:
        with self.lock:
            self.file.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
            self.file.flush()
            while True:
                message = self._read()
                if "event" in message:
                    self.events.append(message)
                    continue
                if "error" in message:
                    raise VanError(f"QMP {name}: {message['error']}")
                return message.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class GuestAgent:
    """The QEMU guest agent on its virtio-serial port: runs a command in the guest and returns its exit code and
    output (the test's only way to ask the guest something the screens and the console do not show)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.file: Any = None

    def _connect(self, timeout: float) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(self.path))
        sock.settimeout(timeout)
        self.sock, self.file = sock, sock.makefile("rwb")
        # guest-sync-delimited: the agent answers after a 0xFF byte, so anything stale on the channel is skipped
        token = int(time.monotonic() * 1000) & 0x7FFFFFFF
        self.file.write(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": token}}).encode())
        self.file.write(b"\n")
        self.file.flush()
        while True:
            byte = self.file.read(1)
            if not byte:
                raise ConnectionError("guest agent closed")
            if byte == b"\xff":
                break
        while True:
            answer = json.loads(self.file.readline())
            if answer.get("return") == token:
                return

    def _call(self, name: str, timeout: float, **arguments: Any) -> Any:
        if self.sock is None:
            self._connect(timeout)
        assert self.file is not None and self.sock is not None
        self.sock.settimeout(timeout)
        self.file.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        answer = json.loads(self.file.readline())
        if "error" in answer:
            raise VanError(f"guest agent {name}: {answer['error']}")
        return answer.get("return")

    def reset(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = self.file = None

    def ping(self, timeout: float = 3.0) -> bool:
        try:
            self._call("guest-ping", timeout)
            return True
        except (OSError, ValueError, ConnectionError, VanError):
            self.reset()
            return False

    def run(self, *argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """``argv`` in the guest as root (the agent's user); its exit code, stdout and stderr."""
        started = self._call("guest-exec", 10, path=argv[0], arg=list(argv[1:]), **{"capture-output": True})
        pid = started["pid"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self._call("guest-exec-status", 10, pid=pid)
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
                return int(status.get("exitcode", -1)), out, err
            time.sleep(0.2)
        raise VanError(f"guest command {argv} still running after {timeout:.0f} s")

    def sh(self, script: str, timeout: float = 60.0) -> tuple[int, str, str]:
        return self.run("/bin/sh", "-c", script, timeout=timeout)


class Screen:
    """A VNC client on one head that asks for a desktop size: qemu then reports the head connected to the guest
    (a screen plugged in). Closing it leaves the head as it is."""

    def __init__(self, path: Path, size: tuple[int, int] = HEAD_SIZE) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(10)
        self._recv(12)
        self.sock.sendall(b"RFB 003.008\n")
        count = self._recv(1)[0]
        self._recv(count)
        self.sock.sendall(b"\x01")  # security type None
        self._recv(4)
        self.sock.sendall(b"\x01")  # ClientInit: shared
        init = self._recv(24)
        self._recv(struct.unpack(">I", init[20:24])[0])  # the desktop's name
        encodings = [0, -308, -223]  # raw, ExtendedDesktopSize, DesktopSize
        self.sock.sendall(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))
        w, h = size
        self.sock.sendall(struct.pack(">BxHHBx", 251, w, h, 1) + struct.pack(">IHHHHI", 0, 0, 0, w, h, 0))
        # qemu sends framebuffer updates only when asked; whatever else it sends is read and dropped, so that no
        # buffer of qemu's ever waits on this client
        self._thread = threading.Thread(target=self._drain, name="vnc-drain", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        self.sock.settimeout(None)
        with contextlib.suppress(OSError):
            while self.sock.recv(65536):
                pass

    def _recv(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("VNC closed")
            data += chunk
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def bmv_block(**changes: str) -> bytes:
    """A BMV-712's live block (the figures the test expects kioskd to show), with ``changes``."""
    fields = {
        "PID": "0xA381", "V": "12840", "VS": "12710", "I": "3100", "P": "40", "CE": "-24300", "SOC": "876",
        "TTG": "-1", "Alarm": "OFF", "Relay": "OFF", "AR": "0", "BMV": "712 Smart", "FW": "0413",
    }  # fmt: skip
    fields.update(changes)
    return encode_block(fields)


class VeDirectCable:
    """The host's end of the emulated FTDI cable: one block a second, as a BMV sends them. A block the guest does
    not take at once is dropped, not queued, so a change of figures reaches kioskd within a second or two."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.block = bmv_block()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vedirect-cable", daemon=True)
        self._thread.start()

    def set(self, **fields: str) -> None:
        self.block = bmv_block(**fields)

    def _run(self) -> None:
        sock: socket.socket | None = None
        while not self._stop.is_set():
            try:
                if sock is None:
                    sock = socket.socket(socket.AF_UNIX)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
                    sock.connect(str(self.path))
                    sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.send(self.block)
                    self.sent += 1
                # what the guest writes to the port (a tty's echo, a probe) is dropped: qemu's usb-serial blocks its
                # whole main loop on a chardev that does not take its bytes
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(4096):
                        pass
            except OSError:
                if sock is not None:
                    sock.close()
                sock = None
            self._stop.wait(1.0)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------------------------------- the van
@dataclass
class VirtualVan:
    disk: Path
    work: Path
    accel: str = "tcg"
    memory_mib: int = 3072
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    qmp: Qmp | None = None
    agent: GuestAgent | None = None
    screens: list[Screen] = field(default_factory=list)
    cable: VeDirectCable | None = None
    marks: dict[str, float] = field(default_factory=dict)

    def command(self) -> list[str]:
        w = self.work
        accel = (
            ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]
        )
        return [
            QEMU, "-machine", "q35,i8042=off", *accel, "-smp", "2", "-m", str(self.memory_mib),
            "-nodefaults", "-no-user-config", "-display", "none", "-name", "virtual-van",
            # a file, not a socket nobody reads: a console that does not drain blocks the guest's PID 1 on its
            # status lines (seen: the boot froze at the first spinner)
            "-chardev", f"file,id=ser0,path={w}/serial.log",
            "-serial", "chardev:ser0",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={w}/vars.fd",
            # snapshot: the guest's writes go to a temporary file, the cached disk stays as built
            "-drive", f"file={self.disk},format=raw,if=virtio,snapshot=on",
            "-device", "virtio-gpu-pci,id=gpu,max_outputs=2",
            "-vnc", f"unix:{w}/head0.sock,display=gpu,head=0",
            "-vnc", f"unix:{w}/head1.sock,display=gpu,head=1",
            "-device", "qemu-xhci,id=usb",
            "-device", "usb-kbd,id=button,bus=usb.0,serial=kioskd-button",  # the profile names it by serial
            # the citizen's touchscreen and keyboard (issue 23), bound to the screens' display so that QMP
            # input-send-event with device "gpu" reaches them while events without a device still reach the button:
            # the tablet to head 1 (the citizen's), the keyboard to head 0 (qemu 7.2's usb-kbd has no head
            # property); on a controller of their own at a fixed slot (the profile names them by serial or USB path)
            "-device", "qemu-xhci,id=usb2,addr=0x0a",
            "-device", "usb-tablet,id=citizen-tablet,bus=usb2.0,port=1,serial=citizen-tablet,display=gpu,head=1",
            "-device", "usb-kbd,id=citizen-kbd,bus=usb2.0,port=2,serial=citizen-kbd,display=gpu",
            "-chardev", f"socket,id=ve,path={w}/vedirect.sock,server=on,wait=off",
            "-device", "usb-serial,id=vedirect,chardev=ve,bus=usb.0,always-plugged=on",
            "-device", "virtio-serial-pci,id=vser",
            "-chardev", f"socket,id=qga,path={w}/qga.sock,server=on,wait=off",
            "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-audiodev", "none,id=snd", "-device", "ich9-intel-hda", "-device", "hda-duplex,audiodev=snd",
            "-netdev", "user,id=net0,restrict=on", "-device", "virtio-net-pci,netdev=net0",
            "-qmp", f"unix:{w}/qmp.sock,server=on,wait=off",
        ]  # fmt: skip

    # ------------------------------------------------------------------------------------------- power
    def power_on(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        if not (self.work / "vars.fd").exists():  # the firmware's NVRAM survives a power cut, as on a PC
            shutil.copyfile(OVMF_VARS, self.work / "vars.fd")
        for name in ("serial.log", "qemu.log"):
            (self.work / name).unlink(missing_ok=True)
        log = (self.work / "qemu.log").open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_for(lambda: (self.work / "qmp.sock").exists() and (self.work / "head1.sock").exists(), 30, "qemu")
        self.qmp = Qmp(self.work / "qmp.sock")
        # both screens plugged in from the start, as in a van
        self.screens = [Screen(self.work / "head0.sock"), Screen(self.work / "head1.sock")]
        self.cable = VeDirectCable(self.work / "vedirect.sock")
        self.agent = GuestAgent(self.work / "qga.sock")

    def stop(self) -> None:
        """qemu ends here whatever state it is in: quit over QMP, then SIGKILL by PID."""
        if self.cable is not None:
            self.cable.close()
        for screen in self.screens:
            screen.close()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                if self.qmp is not None:
                    self.qmp.sock.settimeout(5)
                    self.qmp.command("quit")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.qmp is not None:
            self.qmp.close()
        if self.agent is not None:
            self.agent.reset()

    def since_power_on(self) -> float:
        return time.monotonic() - self.started

    def mark(self, name: str) -> float:
        self.marks[name] = self.since_power_on()
        return self.marks[name]

    # ------------------------------------------------------------------------------------------- reading it
    def serial(self) -> str:
        """The console so far, without its colours and cursor moves."""
        path = self.work / "serial.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return ANSI.sub("", text).replace("\r", "")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(["-- serial console --", *self.serial().splitlines()[-lines:]])

    def wait_for(self, ready: Any, timeout: float, what: str, period: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = ready()
            if value:
                return value
            if self.process is not None and self.process.poll() is not None:
                raise VanError(f"qemu exited ({self.process.returncode}) while waiting for {what}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise VanError(f"no {what} after {timeout:.0f} s\n{self.tail()}")
            time.sleep(period)

    def guest(self) -> GuestAgent:
        assert self.agent is not None
        return self.agent

    def wait_agent(self, timeout: float) -> None:
        self.wait_for(lambda: self.guest().ping(), timeout, "guest agent", period=1.0)

    def wait_active(self, unit: str, timeout: float) -> float:
        """Seconds from the guest's boot to ``unit`` becoming active (a Type=notify unit: its READY=1), read from the
        guest's own systemd through the guest agent. The serial console is no witness for this: systemd's status
        lines stopped on it for good in one CI boot (the last one was the agent's logind session) while kioskd went
        READY and every later test passed, so the console is kept for the failure report only."""
        deadline = time.monotonic() + timeout
        self.wait_agent(timeout)
        show: dict[str, str] = {}

        def active() -> bool:
            nonlocal show
            with contextlib.suppress(VanError, OSError, ValueError, ConnectionError):
                show = self.unit(unit, "ActiveState", "SubState", "ActiveEnterTimestampMonotonic", "NRestarts")
            if show.get("ActiveState") == "failed":
                journal = self.sh(f"journalctl -b -u {unit} --no-pager | tail -40", timeout=120)
                raise VanError(f"{unit} failed: {show}\n{journal}")
            return show.get("ActiveState") == "active"

        try:
            self.wait_for(active, max(deadline - time.monotonic(), 1.0), f"{unit} active", period=2.0)
        except VanError as exc:
            journal = ""
            with contextlib.suppress(VanError, OSError, ValueError, ConnectionError):
                journal = self.sh(f"systemctl list-jobs --no-pager; journalctl -b -u {unit} --no-pager | tail -40", 120)
            raise VanError(f"{exc}\nlast state: {show}\n-- guest journal --\n{journal}") from None
        return int(show["ActiveEnterTimestampMonotonic"]) / 1e6

    def sh(self, script: str, timeout: float = 180.0) -> str:
        code, out, err = self.guest().sh(script, timeout)
        if code != 0:
            raise VanError(f"guest: {script!r} exited {code}: {err.strip() or out.strip()}")
        return out

    def status(self) -> dict[str, Any]:
        """``kioskctl --json status`` in the guest: the station as its agents see it."""
        code, out, err = self.guest().run("/opt/kioskd/bin/kioskctl", "--json", "status", timeout=180)
        if code != 0:
            raise VanError(f"kioskctl status: {code} {err.strip()}")
        answer: dict[str, Any] = json.loads(out)
        return answer

    def wait_status(self, check: Any, timeout: float, what: str) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def probe() -> bool:
            nonlocal last
            with contextlib.suppress(VanError, ValueError):
                last = self.status()
                return bool(check(last))
            return False

        try:
            self.wait_for(probe, timeout, what, period=1.0)
        except VanError as exc:
            raise VanError(f"{exc}\nlast status: {json.dumps(last)[:1500]}") from None
        return last

    def unit(self, name: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show -p {','.join(props)} {name}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    # ------------------------------------------------------------------------------------------- hardware
    def screendump(self, head: int) -> Image.Image:
        target = self.work / f"head{head}.ppm"
        target.unlink(missing_ok=True)
        assert self.qmp is not None
        self.qmp.command("screendump", filename=str(target), device="gpu", head=head)
        self.wait_for(lambda: target.exists() and target.stat().st_size > 0, 10, f"screendump of head {head}", 0.1)
        with Image.open(target) as image:
            return image.convert("RGB")

    def key(self, down: bool, key: str = "ret") -> None:
        assert self.qmp is not None
        event = {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": key}}}
        self.qmp.command("input-send-event", events=[event])

    def press(self, hold: float = 0.2, key: str = "ret") -> None:
        """The button pressed and released after ``hold`` seconds (the profile's hold_time makes a long press)."""
        self.key(True, key)
        time.sleep(hold)
        self.key(False, key)

    def citizen_keys(self, text: str) -> None:
        """``text`` (qcode letters) typed on the citizen's keyboard (bound to the display's head 0, see ``command``)."""
        assert self.qmp is not None
        for letter in text:
            for down in (True, False):
                event = {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": letter}}}
                self.qmp.command("input-send-event", device="gpu", head=0, events=[event])
                time.sleep(0.05)

    def citizen_touch(self, x: float, y: float) -> None:
        """A tap on the citizen's touchscreen at (x, y), fractions of its width and height (qemu's absolute axes
        run 0..0x7fff)."""
        assert self.qmp is not None
        at = [
            {"type": "abs", "data": {"axis": "x", "value": int(x * 0x7FFF)}},
            {"type": "abs", "data": {"axis": "y", "value": int(y * 0x7FFF)}},
        ]
        self.qmp.command("input-send-event", device="gpu", head=1, events=at)
        for down in (True, False):
            button = {"type": "btn", "data": {"down": down, "button": "left"}}
            self.qmp.command("input-send-event", device="gpu", head=1, events=[button])
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise VanError(f"qemu still running {timeout:.0f} s after the power-off\n{self.tail()}") from None


@contextlib.contextmanager
def running(disk: Path, work: Path, accel: str) -> Iterator[VirtualVan]:
    van = VirtualVan(disk, work, accel)
    try:
        van.power_on()
        yield van
    finally:
        van.stop()


def colours(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> Mapping[tuple[int, int, int], int]:
    """How many pixels of each colour (of ``box``, else the whole picture)."""
    part = image.crop(box) if box else image
    found = part.getcolors(part.width * part.height) or []
    return {tuple(colour): count for count, colour in found if isinstance(colour, tuple)}  # type: ignore[misc]


def share(image: Image.Image, colour: tuple[int, int, int], box: tuple[int, int, int, int] | None = None) -> float:
    part = image.crop(box) if box else image
    return colours(part).get(colour, 0) / (part.width * part.height)
