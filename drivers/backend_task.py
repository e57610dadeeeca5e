"""A backend's one long-running task (its read or poll loop): started once by ``start()``, cancelled and awaited by
``close()``, and restarted with a backoff when it dies of an error it did not catch. Used by the backends that read a
port, a socket or a bus (VE.Direct, NUT, UPower, ModemManager).

It runs the loop it is given and knows nothing of the device: a loop still catches its device's expected errors
itself; an unexpected one ends that run, is logged with its traceback and told to the agent as the device's fault
``device.backend.failed``, and the loop starts again (1 s, 2 s, 4 s … up to a minute later)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kioskd.hal import DeviceKind, Event, FaultReporter

log = logging.getLogger(__name__)

FAILED = "device.backend.failed"


class BackgroundTask:
    """One named task of a backend, on the running event loop; with ``kind`` and ``emit``, its crashes are that
    device's fault, cleared once a restarted run has lasted ``healthy_after`` seconds (or ended by itself)."""

    def __init__(
        self,
        name: str,
        kind: DeviceKind | None = None,
        emit: Callable[[Event], None] | None = None,
        *,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        healthy_after: float = 30.0,
    ) -> None:
        self.name = name
        self.crashes = 0  # runs ended by an uncaught error, since start()
        self._faults = FaultReporter(kind, emit) if kind is not None and emit is not None else None
        self._first_backoff, self._max_backoff, self._healthy_after = first_backoff, max_backoff, healthy_after
        self._backoff = first_backoff
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Started and not closed (the loop may have ended by itself)."""
        return self._task is not None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``run()`` unless it is started already (``start()`` may be called twice)."""
        if self._task is None:
            self.crashes = 0
            self._task = asyncio.get_running_loop().create_task(self._supervise(run), name=self.name)

    async def close(self) -> None:
        """Cancel the task and wait until it is gone; nothing happens when it never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._faults is not None:
            self._faults.forget()

    async def _supervise(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.get_running_loop()
        self._backoff = self._first_backoff
        while True:
            healthy = loop.call_later(self._healthy_after, self._recovered) if self.crashes else None
            error: Exception | None = None
            try:
                await run()
            except Exception as exc:
                error = exc
            finally:
                if healthy is not None:
                    healthy.cancel()
            if error is None:
                self._recovered()  # the loop ended by itself: whatever failed before is over
                return
            self.crashes += 1
            log.error(
                "%s: its loop failed (%d time(s)); restarting in %.0f s",
                self.name,
                self.crashes,
                self._backoff,
                exc_info=error,
            )
            if self._faults is not None:
                self._faults.set(FAILED, True)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)

    def _recovered(self) -> None:
        self._backoff = self._first_backoff
        if self._faults is not None:
            self._faults.set(FAILED, False)
