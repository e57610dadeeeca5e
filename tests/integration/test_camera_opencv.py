"""The OpenCV camera backend on synthetic sources: video files written by the test with cv2.VideoWriter and opened
by path (there is no V4L2 device here), and a real child process holding the "device" open during the wipe."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from drivers.camera.opencv import OpenCvCamera
from kioskd.clock import RealClock
from kioskd.hal import Camera, CameraChanged, DeviceError, DeviceFault, DriverContext
from tests.integration.daemon_process import ROOT
from tests.integration.power_services import Recorder

pytestmark = pytest.mark.integration

WIDTH, HEIGHT, FRAMES = 320, 240, 12
Frame = Callable[[int, np.random.Generator], "np.ndarray[Any, Any]"]


def write_video(path: Path, frame: Frame) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (WIDTH, HEIGHT))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    rng = np.random.default_rng(9)
    for index in range(FRAMES):
        writer.write(frame(index, rng))
    writer.release()
    return path


def scene(index: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A lit room with someone moving: a gradient, a square that travels, sensor noise."""
    picture = np.tile(np.linspace(60, 200, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    picture = np.dstack([picture] * 3)
    x = 20 + index * 15
    picture[80:160, x : x + 60] = (30, 90, 220)
    noise = rng.integers(-6, 7, picture.shape, dtype=np.int16)
    return np.clip(picture.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def black(_index: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A lens cover: dark with a little noise."""
    return rng.integers(0, 6, (HEIGHT, WIDTH, 3), dtype=np.uint8)


_still = scene(3, np.random.default_rng(1))


def frozen(_index: int, _rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A hung driver: the same buffer again and again."""
    return _still


def _hold(device: Path) -> subprocess.Popen[bytes]:
    """A process of the session that still has the camera open (its stdin)."""
    with open(device, "rb") as node:
        return subprocess.Popen(["sleep", "60"], stdin=node)


def _hold_fifo(fifo: Path) -> subprocess.Popen[bytes]:
    """A call holding a FIFO "camera" open (O_RDWR: an open of a FIFO that does not wait for a peer)."""
    held = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        return subprocess.Popen(["sleep", "60"], stdin=held)
    finally:
        os.close(held)


def context(options: dict[str, Any], emit: Recorder, runtime_dir: Path) -> DriverContext:
    return DriverContext("camera", "opencv", options, RealClock(), emit, runtime_dir, source="test-profile.toml")


@pytest.fixture
async def camera_on(tmp_path: Path) -> AsyncIterator[Callable[[Path], Any]]:
    started: list[OpenCvCamera] = []

    async def make(device: Path) -> tuple[OpenCvCamera, Recorder]:
        events = Recorder()
        backend = OpenCvCamera(context({"device": str(device), "name": "Webcam"}, events, tmp_path))
        await backend.start()
        started.append(backend)
        return backend, events

    yield make
    for backend in started:
        await backend.close()


async def test_a_normal_picture_passes_with_its_resolution(tmp_path: Path, camera_on: Any) -> None:
    camera, events = await camera_on(write_video(tmp_path / "room.avi", scene))
    assert isinstance(camera, Camera)
    assert camera.state.present and camera.state.name == "Webcam"
    health = await camera.health()
    assert health.ok and health.fault is None
    assert (health.width, health.height) == (WIDTH, HEIGHT)
    assert health.frames == 8 and not health.black and not health.frozen
    assert 60 < health.brightness < 200
    assert events.of(DeviceFault) == []
    assert [e.state.in_use for e in events.of(CameraChanged)] == [False, True, False], "released after the check"


async def test_a_black_picture_is_detected_and_raised_as_a_fault(tmp_path: Path, camera_on: Any) -> None:
    camera, events = await camera_on(write_video(tmp_path / "cover.avi", black))
    health = await camera.health()
    assert not health.ok and health.black and health.fault == "camera.black"
    assert health.brightness < 12
    assert events.of(DeviceFault) == [DeviceFault("camera", "camera.black")]


async def test_a_frozen_picture_is_detected_and_a_good_check_clears_it(tmp_path: Path, camera_on: Any) -> None:
    still = write_video(tmp_path / "hung.avi", frozen)
    camera, events = await camera_on(still)
    health = await camera.health()
    assert not health.ok and health.frozen and not health.black and health.fault == "camera.frozen"
    write_video(still, scene)  # the driver recovered (same "device", moving picture)
    assert (await camera.health()).ok
    assert events.of(DeviceFault) == [
        DeviceFault("camera", "camera.frozen"),
        DeviceFault("camera", "camera.frozen", cleared=True),
    ]


async def test_a_missing_camera_is_reported_absent(tmp_path: Path, camera_on: Any) -> None:
    camera, events = await camera_on(tmp_path / "unplugged.avi")
    assert not camera.state.present
    health = await camera.health()
    assert not health.ok and not health.present and health.fault == "camera.absent"
    assert events.of(DeviceFault) == [DeviceFault("camera", "camera.absent")]


async def test_the_wipe_fails_while_a_process_still_holds_the_camera_and_passes_once_it_is_gone(
    tmp_path: Path, camera_on: Any
) -> None:
    device = write_video(tmp_path / "room.avi", scene)
    camera, _ = await camera_on(tmp_path / "link.avi")
    (tmp_path / "link.avi").symlink_to(device)  # a udev-style symlink: the holder has the real node open
    await camera.reset()  # nothing holds it
    holder = _hold(device)
    try:
        with pytest.raises(DeviceError, match=r"1 process\(es\): sleep") as held:
            await camera.reset()
        assert held.value.key == "camera.held"
        assert camera.state.in_use
    finally:
        holder.kill()
        holder.wait()
    await camera.reset()
    assert not camera.state.in_use


async def test_a_holder_the_profile_allows_does_not_fail_the_wipe(tmp_path: Path) -> None:
    device = write_video(tmp_path / "room.avi", scene)
    options = {"device": str(device), "allowed_holders": ["sleep"]}  # as 'pipewire' would be in a van
    camera = OpenCvCamera(context(options, Recorder(), tmp_path))
    await camera.start()
    holder = _hold(device)
    try:
        await camera.reset()
        assert not camera.state.in_use
    finally:
        holder.kill()
        holder.wait()
        await camera.close()


async def test_the_health_check_does_not_fight_a_call_that_holds_the_camera(tmp_path: Path, camera_on: Any) -> None:
    """A call holds the camera: the check says "in use" at once, as a state, without opening it. The "device" is a
    FIFO the call holds open, whose reads never end: opened anyway, the check would hang (as a V4L2 node gives EBUSY
    or waits), and it would take the camera from the call."""
    fifo = tmp_path / "video0"
    os.mkfifo(fifo)
    camera, events = await camera_on(fifo)
    call = _hold_fifo(fifo)
    try:
        health = await asyncio.wait_for(camera.health(), 10)
        assert health.in_use and health.ok and health.fault is None and health.frames == 0
        assert camera.state.in_use and camera.state.present
        assert events.of(DeviceFault) == [], "a running call is no fault"
    finally:
        call.kill()
        call.wait()
    write_video(tmp_path / "room.avi", scene)
    fifo.unlink()
    (tmp_path / "room.avi").rename(fifo)
    health = await asyncio.wait_for(camera.health(), 30)
    assert health.ok and not health.in_use and health.frames > 0, "free again: checked for real"


# What kioskd is in the image: not root's powers over other users' processes (no CAP_SYS_PTRACE, no DAC override),
# only CAP_SETUID/CAP_SETGID (it starts the session app as its user). Root minus those stands for it here.
AS_KIOSKD = ["setpriv", "--bounding-set=-sys_ptrace,-dac_read_search,-dac_override,-fowner", "--inh-caps=-all"]
WIPE_CHECK = """
import asyncio, sys
from pathlib import Path
from drivers.camera.opencv import OpenCvCamera
from kioskd.clock import RealClock
from kioskd.hal import DeviceError, DriverContext

async def main() -> None:
    ctx = DriverContext("camera", "opencv", {"device": sys.argv[1]}, RealClock(), lambda e: None, Path(sys.argv[2]))
    camera = OpenCvCamera(ctx)
    await camera.start()
    try:
        await camera.reset()
        print("free")
    except DeviceError as exc:
        print(f"{exc.key}: {exc}")
    print("in use" if (await camera.health()).in_use else "checked")
    await camera.close()

asyncio.run(main())
"""


def test_the_wipe_sees_a_holder_of_another_user_which_kioskd_cannot_read_itself(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test switches users: run it as root (CI does)"
    device = write_video(tmp_path / "room.avi", scene)
    with open(device, "rb") as node:  # the session app's user, holding the camera; its /proc/<pid>/fd is its own
        holder = subprocess.Popen(["sleep", "60"], stdin=node, user="nobody", group="nogroup", extra_groups=[])
    try:
        denied = subprocess.run(
            [*AS_KIOSKD, "ls", f"/proc/{holder.pid}/fd"], capture_output=True, text=True, timeout=30, check=False
        )
        assert denied.returncode != 0, "the stand-in for kioskd must not read another user's fds itself"
        check = subprocess.run(
            [*AS_KIOSKD, sys.executable, "-c", WIPE_CHECK, str(device), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        lines = check.stdout.splitlines()
        assert lines[0].startswith("camera.held:") and "sleep" in lines[0], check.stdout
        assert lines[1] == "in use", "the health check sees the session's holder too"
    finally:
        holder.kill()
        holder.wait()
    check = subprocess.run(
        [*AS_KIOSKD, sys.executable, "-c", WIPE_CHECK, str(device), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert check.stdout.splitlines() == ["free", "checked"], check.stdout + check.stderr
