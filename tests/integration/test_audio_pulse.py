"""The PulseAudio backend against a private pulseaudio: preferred devices made default as they appear, fallback when
they go, the session's levels and the wipe's, a missing microphone as a fault, an unreachable server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.audio.pulse import PulseAudio
from kioskd.clock import RealClock
from kioskd.hal import Audio, AudioChanged, DeviceError, DeviceFault, DriverContext
from tests.integration import require
from tests.integration.power_services import Recorder, wait_until
from tests.integration.pulse_service import PulseServer, ServerCut, private_pulse

pytestmark = pytest.mark.integration

SPEAKER = "module-null-sink sink_name=van_speaker sink_properties=device.description=Haut-parleurs"
MIC = "module-null-source source_name=van_mic description=Micro-plafond"
HEADSET = "sink_name=usb_headset sink_properties=device.description=USB-Headset"
HEADSET_MIC = "source_name=usb_headset_mic description=USB-Headset-Mic"
PROFILE: dict[str, Any] = {
    "sinks": ["*headset*", "van_speaker"],  # the headset when plugged, else the van's speaker
    "sources": ["*headset*", "van_mic"],
    "volume": 55,
}


@pytest.fixture
def pulse() -> Iterator[PulseServer]:
    # a short path: the native socket's must fit in 107 bytes
    with tempfile.TemporaryDirectory(prefix="kioskd-pa-") as base, private_pulse(Path(base), [SPEAKER, MIC]) as server:
        yield server


def context(options: dict[str, Any], emit: Recorder, runtime_dir: Path) -> DriverContext:
    return DriverContext("audio", "pulse", options, RealClock(), emit, runtime_dir, source="test-profile.toml")


@pytest.fixture
async def audio(pulse: PulseServer, tmp_path: Path) -> AsyncIterator[tuple[PulseAudio, Recorder]]:
    events = Recorder()
    backend = PulseAudio(context({**PROFILE, "server": pulse.server}, events, tmp_path))
    await backend.start()
    yield backend, events
    await backend.close()


def _play(pulse: PulseServer) -> subprocess.Popen[bytes]:
    """A call's playback stream: pacat playing silence until killed."""
    return subprocess.Popen(
        [require.binary("pacat", "pulseaudio-utils"), "--playback", "--raw", "/dev/zero"],
        env=pulse.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def defaults(pulse: PulseServer) -> tuple[str, str]:
    info = dict(line.split(": ", 1) for line in pulse.pactl("info").splitlines() if ": " in line)
    return info["Default Sink"], info["Default Source"]


def volume_percent(pulse: PulseServer, kind: str, name: str) -> int:
    line = pulse.pactl(f"get-{kind}-volume", name).splitlines()[0]
    return int(line.split("/")[1].strip().rstrip("%"))


def muted(pulse: PulseServer, kind: str, name: str) -> bool:
    return pulse.pactl(f"get-{kind}-mute", name).endswith("yes")


async def test_at_start_the_preferred_devices_are_default_and_the_microphone_is_muted(
    audio: tuple[PulseAudio, Recorder], pulse: PulseServer
) -> None:
    backend, events = audio
    assert isinstance(backend, Audio)
    await wait_until(lambda: backend.state.present, "the first report")
    assert defaults(pulse) == ("van_speaker", "van_mic")
    assert muted(pulse, "source", "van_mic"), "between citizens the microphone is muted"
    assert volume_percent(pulse, "sink", "van_speaker") == 55
    state = backend.state
    assert (state.sink, state.source, state.volume, state.mic_muted) == ("Haut-parleurs", "Micro-plafond", 55, True)
    assert events.of(DeviceFault) == []


async def test_a_headset_plugged_mid_session_becomes_default_takes_the_stream_and_its_removal_falls_back(
    audio: tuple[PulseAudio, Recorder], pulse: PulseServer
) -> None:
    backend, events = audio
    await backend.session_start()
    assert not muted(pulse, "source", "van_mic"), "a citizen's video call needs the microphone"
    pacat = _play(pulse)
    try:
        await wait_until(lambda: backend.state.streams == 1, "the call's playback stream")
        sink_module = pulse.pactl("load-module", "module-null-sink", *HEADSET.split())
        source_module = pulse.pactl("load-module", "module-null-source", *HEADSET_MIC.split())
        await wait_until(lambda: backend.state.sink == "USB-Headset", "the headset made default")
        await wait_until(lambda: backend.state.source == "USB-Headset-Mic", "the headset's microphone")
        assert defaults(pulse) == ("usb_headset", "usb_headset_mic")
        assert volume_percent(pulse, "sink", "usb_headset") == 55
        assert not muted(pulse, "source", "usb_headset_mic"), "in session, the new microphone is open"
        streams = pulse.pactl("list", "short", "sink-inputs").split()
        headset_index = next(
            line.split()[0] for line in pulse.pactl("list", "short", "sinks").splitlines() if "usb_headset" in line
        )
        assert streams[1] == headset_index, "the running call moved to the headset"

        pulse.pactl("unload-module", sink_module)
        pulse.pactl("unload-module", source_module)
        await wait_until(lambda: backend.state.sink == "Haut-parleurs", "the fallback to the speaker")
        await wait_until(lambda: backend.state.source == "Micro-plafond", "the fallback microphone")
        assert defaults(pulse) == ("van_speaker", "van_mic")
        assert events.of(DeviceFault) == []
    finally:
        os.killpg(pacat.pid, signal.SIGKILL)
        pacat.wait()


async def test_the_wipe_mutes_the_microphone_and_puts_the_volume_back(
    audio: tuple[PulseAudio, Recorder], pulse: PulseServer
) -> None:
    backend, _ = audio
    await backend.session_start()
    pulse.pactl("set-sink-volume", "van_speaker", "90%")  # the citizen turned it up during the call
    pulse.pactl("set-sink-mute", "van_speaker", "1")
    await wait_until(lambda: backend.state.volume == 90, "the citizen's volume reported")
    assert backend.state.mic_muted is False
    await backend.reset()
    assert muted(pulse, "source", "van_mic")
    assert volume_percent(pulse, "sink", "van_speaker") == 55
    assert backend.state.mic_muted is True and backend.state.volume == 55
    await backend.session_start()
    assert not muted(pulse, "sink", "van_speaker"), "the next citizen hears the call"


async def test_a_missing_microphone_is_a_fault_the_agent_sees_and_its_arrival_clears_it(
    pulse: PulseServer, tmp_path: Path
) -> None:
    events = Recorder()
    backend = PulseAudio(context({**PROFILE, "sources": ["*headset*"], "server": pulse.server}, events, tmp_path))
    await backend.start()
    try:
        assert events.of(DeviceFault) == [DeviceFault("audio", "audio.no-microphone")]
        assert backend.state.present and backend.state.source is None
        await backend.session_start()  # no crash: the citizen is served without a microphone
        await backend.reset()
        pulse.pactl("load-module", "module-null-source", *HEADSET_MIC.split())
        await wait_until(lambda: backend.state.source == "USB-Headset-Mic", "the headset's microphone")
        assert events.of(DeviceFault)[-1] == DeviceFault("audio", "audio.no-microphone", cleared=True)
        assert muted(pulse, "source", "usb_headset_mic"), "a microphone arriving between citizens stays muted"
    finally:
        await backend.close()


async def test_an_unreachable_server_is_a_fault_and_the_wipe_handler_says_so(tmp_path: Path) -> None:
    events = Recorder()
    backend = PulseAudio(context({**PROFILE, "server": f"unix:{tmp_path}/nothing", "retry": 0.2}, events, tmp_path))
    await backend.start()
    try:
        assert events.of(DeviceFault) == [DeviceFault("audio", "audio.unreachable")]
        assert not backend.state.present
        assert not [e for e in events.of(AudioChanged) if e.state.present]
        with pytest.raises(DeviceError, match="cannot be reached"):
            await backend.reset()
    finally:
        await backend.close()


async def test_the_server_going_away_is_a_fault_not_a_crash(
    audio: tuple[PulseAudio, Recorder], pulse: PulseServer
) -> None:
    backend, events = audio
    await wait_until(lambda: backend.state.present, "the first report")
    os.kill(pulse.pid, signal.SIGKILL)
    await wait_until(lambda: DeviceFault("audio", "audio.unreachable") in events.of(DeviceFault), "the fault")
    await wait_until(lambda: not backend.state.present, "the absent state")
    with pytest.raises(DeviceError):
        await backend.reset()


def _kill_and_reap(pid: int) -> None:
    """SIGKILL, then wait until the kernel has closed its sockets (a zombie holds none)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] in "ZX":
                return
        except (OSError, IndexError):
            return
        time.sleep(0.001)


ATTEMPTS = 9


async def test_a_server_gone_at_the_worst_moment_is_a_fault_and_the_worker_reconnects_every_time(
    tmp_path: Path,
) -> None:
    """The races of issue 18, made certain by a relay that kills the server and hangs up at an exact point, in turn:
    right after the server answered the wipe's reset (the next call may meet libpulse's CallError('Bad state'), which
    pulsectl does not wrap), right after it answered a refresh that followed a device event, and right after it sent
    the listener an event while the worker was busy with the reset (a refresh queued for a connection that is gone).
    Each time the caller gets a DeviceError, no thread dies, the worker reconnects to the next server, and it still
    follows the devices there: a headset plugged after the reconnection becomes the default."""
    died: list[str] = []
    previous_hook = threading.excepthook

    def record(args: threading.ExceptHookArgs) -> None:
        died.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}")
        previous_hook(args)

    async def one_cut(attempt: int, server: PulseServer, relay: ServerCut, audio: PulseAudio) -> None:
        await wait_until(lambda: audio.state.sink == "Haut-parleurs", f"attempt {attempt}: connected")
        assert not died, f"attempt {attempt}: a thread of the backend died: {died}"
        if attempt:  # the backend still follows the devices on the server it reconnected to
            server.pactl("load-module", "module-null-sink", *HEADSET.split())
            await wait_until(lambda: audio.state.sink == "USB-Headset", f"attempt {attempt}: hotplug")
        if attempt == ATTEMPTS:
            await audio.reset()  # the wipe works again, on the same backend, without a restart
            assert muted(server, "source", "van_mic")
            return
        mark, done, kind = events.mark(), relay.cuts, attempt % 3
        if kind == 2:  # the citizen turned the volume up: the reset changes it back, and the server tells of it
            server.pactl("set-sink-volume", "@DEFAULT_SINK@", "90%")
            await wait_until(lambda: audio.state.volume == 90, f"attempt {attempt}: the citizen's volume")
        relay.cut(lambda: _kill_and_reap(server.pid), event=kind == 2)
        if kind == 0:
            with pytest.raises(DeviceError):
                await audio.reset()
        elif kind == 1:
            # the listener hears it and the worker refreshes (unless a refresh still running was cut first)
            with contextlib.suppress(subprocess.CalledProcessError):
                server.pactl("set-sink-volume", "van_speaker", f"{40 + attempt}%")
        else:
            with contextlib.suppress(DeviceError):  # the reset may be over before its first event is passed on
                await audio.reset()
        await wait_until(lambda: relay.cuts == done + 1, f"attempt {attempt}: the cut")
        await wait_until(
            lambda: DeviceFault("audio", "audio.unreachable") in events.since(mark, DeviceFault),
            f"attempt {attempt}: the unreachable fault",
        )
        assert not died, f"attempt {attempt}: a thread of the backend died: {died}"

    threading.excepthook = record
    events = Recorder()
    with tempfile.TemporaryDirectory(prefix="kioskd-pa-") as base:
        relay: ServerCut | None = None
        backend: PulseAudio | None = None
        try:
            for attempt in range(ATTEMPTS + 1):
                with private_pulse(Path(base) / str(attempt), [SPEAKER, MIC], shm=False) as server:
                    if relay is None:
                        relay = ServerCut(Path(base) / "relay", server.server)
                        options = {**PROFILE, "server": relay.server, "retry": 0.1, "timeout": 5}
                        backend = PulseAudio(context(options, events, tmp_path))
                        await backend.start()
                    assert backend is not None
                    relay.target = server.server
                    await one_cut(attempt, server, relay, backend)
            faults = events.of(DeviceFault)
            assert DeviceFault("audio", "audio.unreachable", cleared=True) in faults
            assert DeviceFault("audio", "device.backend.failed") not in faults, "a lost server is no backend failure"
        finally:
            threading.excepthook = previous_hook
            if backend is not None:
                await backend.close()
            if relay is not None:
                relay.close()


WEBCAM_MIC = "module-null-source source_name=webcam_mic description=Webcam-C920-Micro"


async def test_the_wipe_mutes_every_microphone_not_only_the_default_one(tmp_path: Path) -> None:
    """A webcam brings its own microphone: the call may have used it (or the citizen picked it in the browser); the
    wipe mutes it too, and a microphone that appears between citizens is muted as it appears."""
    with (
        tempfile.TemporaryDirectory(prefix="kioskd-pa-") as base,
        private_pulse(Path(base), [SPEAKER, MIC, WEBCAM_MIC]) as server,
    ):
        events = Recorder()
        backend = PulseAudio(context({**PROFILE, "server": server.server}, events, tmp_path))
        await backend.start()
        try:
            await wait_until(lambda: backend.state.present, "the first report")
            assert defaults(server)[1] == "van_mic", "the profile's microphone is the default"
            await wait_until(lambda: muted(server, "source", "webcam_mic"), "the webcam's microphone muted at start")
            await backend.session_start()
            server.pactl("set-source-mute", "webcam_mic", "0")  # the call used the webcam's microphone
            assert not muted(server, "source", "van_mic") and not muted(server, "source", "webcam_mic")
            await backend.reset()
            assert muted(server, "source", "van_mic")
            assert muted(server, "source", "webcam_mic"), "the webcam's microphone stays live after the wipe"
            server.pactl("load-module", "module-null-source", "source_name=usb_cam2_mic", "description=Second-Webcam")
            await wait_until(lambda: muted(server, "source", "usb_cam2_mic"), "a microphone plugged between citizens")
        finally:
            await backend.close()
