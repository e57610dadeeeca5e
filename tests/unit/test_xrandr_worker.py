"""The xrandr backend's worker loop, on the one point an X server cannot show on demand: events that python-xlib
has already read off the socket when the worker goes back to waiting (an app's paste request arriving while the
previous events are handled)."""

from __future__ import annotations

import os
import select
import time

from drivers.display.xrandr import XrandrDisplays


class QueuedEvents:
    """An X connection whose library already holds one event: its socket has nothing left to read."""

    def pending_events(self) -> int:
        return 1


def test_events_already_read_are_handled_without_waiting_on_the_wake_pipe() -> None:
    # Before: _wait returned [wake pipe] here, and the worker then blocked reading a pipe nobody had written to,
    # until the next command: xclip's paste of the cleared clipboard waited that long (a CI run hung on it).
    worker = XrandrDisplays.__new__(XrandrDisplays)
    worker._wake_r, wake_w = os.pipe()
    try:
        worker._display = QueuedEvents()  # type: ignore[assignment]
        worker._settle_at = None
        worker._reconnect_at = time.monotonic()
        readable = worker._wait()
        assert worker._wake_r not in readable
        assert not select.select([worker._wake_r], [], [], 0)[0]  # and indeed nothing to read there
    finally:
        os.close(worker._wake_r)
        os.close(wake_w)
