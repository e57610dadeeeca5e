"""Speakers/headset and microphone through PulseAudio (pulsectl): the profile's preferred devices made default as they
appear, the session's volume, and every microphone muted between citizens.

pulsectl blocks, and a connection must stay on one thread: one worker thread owns the command connection and runs
what the loop asks, one listener thread owns a second connection in ``event_listen`` and only tells the worker that
something changed. Results go back to the loop through futures; states and faults through ``DriverContext.emit``.
Neither thread dies of the server's errors: a lost server is the fault ``audio.unreachable`` and a reconnection, any
other error in a command is logged, told as ``device.backend.failed``, and the worker reconnects."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fnmatch
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import pulsectl
from pulsectl._pulsectl import LibPulse
from pydantic import Field

from drivers.backend_task import FAILED
from kioskd.hal import AudioChanged, AudioState, DeviceError, DriverContext, DriverOptions, Event, FaultReporter

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_OUTPUT = "audio.no-output"
NO_MICROPHONE = "audio.no-microphone"
UNREACHABLE = "audio.unreachable"
# What a connection that is gone raises: pulsectl's own errors, and libpulse's CallError ('Bad state') when a call
# starts on a context that saw the server go in the same dispatch as its last answer (pulsectl does not wrap it).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pulsectl.PulseError,
    pulsectl.PulseDisconnected,
    LibPulse.CallError,
)


class PulseOptions(DriverOptions):
    server: str | None = Field(
        None,
        description="PulseAudio server (e.g. unix:/run/user/1000/pulse/native); none: "
        "PULSE_SERVER or the user's default",
    )
    sinks: list[str] = Field(
        default_factory=list,
        description="output devices in order of preference, as glob patterns on the sink's name or description "
        "(e.g. '*USB*Headset*', then '*analog-stereo*'); empty: the server's default",
    )
    sources: list[str] = Field(default_factory=list, description="microphones, the same way")
    volume: int = Field(60, ge=0, le=100, description="% set on a device made default, at session start and wipe")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds a command may take before it counts as failed")
    retry: float = Field(5.0, gt=0, le=300, description="seconds between attempts while the server is unreachable")


def _matches(pattern: str, info: Any) -> bool:
    pattern = pattern.lower()
    return fnmatch.fnmatchcase(info.name.lower(), pattern) or fnmatch.fnmatchcase(
        (info.description or "").lower(), pattern
    )


class _Call:
    """A command the loop sent the worker, with the future its caller awaits."""

    def __init__(self, command: Callable[[Any], Any], future: concurrent.futures.Future[Any]) -> None:
        self.command = command
        self.future = future

    def __call__(self, pulse: Any) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(self.command(pulse))
        except BaseException as exc:
            self.future.set_exception(exc)
            if isinstance(exc, CONNECTION_ERRORS):
                raise  # the worker reconnects

    def abandon(self) -> None:
        """The connection it was queued for is gone: its caller learns it now, not at its timeout."""
        if self.future.set_running_or_notify_cancel():
            self.future.set_exception(pulsectl.PulseDisconnected())


def pick(patterns: list[str], devices: list[Any], default_name: str) -> Any | None:
    """The first device matching the earliest pattern; without patterns, the server's default."""
    if not patterns:
        return next((d for d in devices if d.name == default_name), devices[0] if devices else None)
    for pattern in patterns:
        for device in devices:
            if _matches(pattern, device):
                return device
    return None


class PulseAudio:
    """An ``Audio`` backend. Between sessions every microphone is muted; ``session_start`` opens the chosen one and
    sets the volume, ``reset`` (a wipe handler) mutes them all again (a webcam's own microphone too) and puts the
    volume back. A missing device is a fault the agent sees, never an exception out of the backend."""

    options_model: ClassVar[type[PulseOptions]] = PulseOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.options = ctx.parse_options(self.options_model)
        self._emit: Callable[[Event], None] = ctx.emit
        self._state = AudioState()
        self._faults = FaultReporter("audio", ctx.emit)  # each fault told once
        self._commands: queue.Queue[Callable[[Any], None] | None] = queue.Queue()
        self._refresh_queued = threading.Event()
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._first_attempt = threading.Event()
        self._in_session = False
        self._chosen: tuple[str | None, str | None] = (None, None)  # the sink and source last made default
        self._worker: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._listener_pulse: Any = None

    @property
    def state(self) -> AudioState:
        return self._state

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._worker is not None:
            return
        self._closing.clear()
        self._worker = threading.Thread(target=self._work, name="kioskd-audio", daemon=True)
        self._worker.start()
        # the first attempt decides the state the station starts with; an unreachable server is a fault, not an error
        await asyncio.to_thread(self._first_attempt.wait, self.options.timeout)

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._closing.set()
        self._commands.put(None)
        await asyncio.to_thread(self._stop_listener)
        await asyncio.to_thread(worker.join, self.options.timeout)

    # ------------------------------------------------------------------------------------------- commands
    async def session_start(self) -> None:
        """A citizen arrives: output unmuted at the profile's volume, microphone open (video calls)."""
        self._in_session = True
        await self._call(lambda pulse: self._settle(pulse, session=True))

    async def reset(self) -> None:
        """The wipe: every microphone muted, volume back to the profile's; fails when the server cannot be reached (the
        verdict says so, a retry runs it again)."""
        self._in_session = False

        def wipe(pulse: Any) -> list[str]:
            self._settle(pulse, session=False)
            return self._open_sources(pulse)

        still_open = await self._call(wipe)
        if still_open or (self._state.source is not None and not self._state.mic_muted):
            raise DeviceError(f"{max(len(still_open), 1)} microphone(s) still open after the reset", where="audio")

    async def _call(self, command: Callable[[Any], T]) -> T:
        if not self._connected.is_set():
            raise DeviceError("the PulseAudio server cannot be reached", where="audio", key=UNREACHABLE)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._commands.put(_Call(command, future))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.options.timeout)
        except CONNECTION_ERRORS as exc:
            raise DeviceError(f"PulseAudio refused: {type(exc).__name__}", where="audio", key=UNREACHABLE) from None
        except TimeoutError:
            raise DeviceError("PulseAudio did not answer in time", where="audio", key=UNREACHABLE) from None

    # ------------------------------------------------------------------------------------------- worker thread
    def _work(self) -> None:
        while not self._closing.is_set():
            try:
                with pulsectl.Pulse("kioskd", server=self.options.server) as pulse:
                    self._connected.set()
                    self._faults.set(UNREACHABLE, False)
                    self._start_listener()
                    self._settle(pulse, session=self._in_session)
                    self._faults.set(FAILED, False)
                    self._first_attempt.set()
                    while (command := self._commands.get()) is not None:
                        command(pulse)
                    return
            except CONNECTION_ERRORS as exc:
                log.warning("PulseAudio unreachable (%s): retrying in %.0f s", type(exc).__name__, self.options.retry)
            except Exception:
                # not the server going: a fault of this backend, told once; the connection starts again from scratch
                log.exception("the audio worker failed: reconnecting in %.0f s", self.options.retry)
                self._faults.set(FAILED, True)
            finally:
                self._connected.clear()
                self._stop_listener()
            self._publish(AudioState())
            self._faults.set(UNREACHABLE, True)
            self._first_attempt.set()
            self._drain()
            self._closing.wait(self.options.retry)

    def _drain(self) -> None:
        """Commands queued for a connection that is gone: their callers get a timeout-free failure; a refresh dropped
        here is asked again by the next event."""
        self._refresh_queued.clear()
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if command is None:
                self._closing.set()
                return
            if isinstance(command, _Call):
                command.abandon()

    def _refresh(self, pulse: Any) -> None:
        self._refresh_queued.clear()
        self._settle(pulse, session=None)

    def _settle(self, pulse: Any, session: bool | None) -> None:
        """Make the preferred devices default (streams follow them); with ``session`` True/False, also apply the
        session's or the wipe's levels; then report what is in use."""
        info = pulse.server_info()
        sinks = pulse.sink_list()
        sources = [s for s in pulse.source_list() if s.monitor_of_sink == 0xFFFFFFFF]  # monitors are not microphones
        sink = pick(self.options.sinks, sinks, info.default_sink_name)
        source = pick(self.options.sources, sources, info.default_source_name)
        self._faults.set(NO_OUTPUT, sink is None)
        self._faults.set(NO_MICROPHONE, source is None)
        new_sink = sink is not None and sink.name != self._chosen[0]
        new_source = source is not None and source.name != self._chosen[1]
        if sink is not None:
            if sink.name != info.default_sink_name:
                pulse.sink_default_set(sink)
            if new_sink:
                for stream in pulse.sink_input_list():
                    if stream.sink != sink.index:
                        pulse.sink_input_move(stream.index, sink.index)
            if new_sink or session is not None:
                pulse.volume_set_all_chans(sink, self.options.volume / 100)
            if session:
                pulse.mute(sink, False)
        if source is not None:
            if source.name != info.default_source_name:
                pulse.source_default_set(source)
            if new_source:
                for stream in pulse.source_output_list():
                    if stream.source != source.index:
                        pulse.source_output_move(stream.index, source.index)
            want_muted = not (self._in_session if session is None else session)
            if new_source or session is not None:
                pulse.mute(source, want_muted)
        if not (self._in_session if session is None else session):
            # between citizens every microphone is muted, not only the default one: a webcam's own, a second headset
            for other in sources:
                if not other.mute and (source is None or other.name != source.name):
                    pulse.mute(other, True)
        self._chosen = (sink.name if sink else None, source.name if source else None)
        self._report(pulse)

    @staticmethod
    def _open_sources(pulse: Any) -> list[str]:
        """The microphones (not the monitors of outputs) left unmuted."""
        return [s.name for s in pulse.source_list() if s.monitor_of_sink == 0xFFFFFFFF and not s.mute]

    def _report(self, pulse: Any) -> None:
        info = pulse.server_info()
        sink = next((s for s in pulse.sink_list() if s.name == info.default_sink_name), None)
        source = next((s for s in pulse.source_list() if s.name == info.default_source_name), None)
        chosen_sink, chosen_source = self._chosen
        self._publish(
            AudioState(
                present=chosen_sink is not None,
                sink=sink.description if sink is not None and sink.name == chosen_sink else None,
                source=source.description if source is not None and source.name == chosen_source else None,
                volume=round(sink.volume.value_flat * 100) if sink is not None else None,
                muted=bool(sink.mute) if sink is not None else False,
                mic_muted=bool(source.mute) if source is not None else True,
                streams=len(pulse.sink_input_list()) + len(pulse.source_output_list()),
            )
        )

    def _publish(self, state: AudioState) -> None:
        if state != self._state:
            self._state = state
            self._emit(AudioChanged(state))

    # ------------------------------------------------------------------------------------------- listener thread
    def _start_listener(self) -> None:
        ready = threading.Event()
        self._listener = threading.Thread(target=self._listen, args=(ready,), name="kioskd-audio-events", daemon=True)
        self._listener.start()
        ready.wait(self.options.timeout)

    def _listen(self, ready: threading.Event) -> None:
        try:
            with pulsectl.Pulse("kioskd-events", server=self.options.server) as pulse:
                pulse.event_mask_set("sink", "source", "server", "sink_input", "source_output")
                pulse.event_callback_set(self._on_pulse_event)
                self._listener_pulse = pulse
                ready.set()
                while not self._closing.is_set() and self._connected.is_set():
                    pulse.event_listen()
        except Exception as exc:
            if not isinstance(exc, CONNECTION_ERRORS):
                log.exception("the audio event listener failed: reconnecting")
            if self._connected.is_set() and not self._closing.is_set():
                self._commands.put(self._lost)
        finally:
            self._listener_pulse = None
            ready.set()

    def _on_pulse_event(self, _event: Any) -> None:
        """On the listener thread, inside libpulse: no pulse call here, only a note for the worker (one at a time)."""
        if not self._refresh_queued.is_set():
            self._refresh_queued.set()
            self._commands.put(self._refresh)

    @staticmethod
    def _lost(_pulse: Any) -> None:
        raise pulsectl.PulseDisconnected()

    def _stop_listener(self) -> None:
        listener = self._listener
        if listener is None or listener is threading.current_thread():
            return
        # event_listen_stop is a no-op until the listener is inside libpulse's poll: repeat until it leaves
        while listener.is_alive():
            pulse = self._listener_pulse
            if pulse is not None:
                with contextlib.suppress(Exception):
                    pulse.event_listen_stop()
            listener.join(0.05)
        self._listener = None
