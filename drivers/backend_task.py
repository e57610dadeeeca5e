"""A backend's one long-running task (its read or poll loop): started once by ``start()``, cancelled and awaited by
``close()``. Used by the power backends that read a port, a socket or a bus (VE.Direct, NUT, UPower).

It runs the loop it is given and knows nothing of the device; a loop that must never die catches its own errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundTask:
    """One named task of a backend, on the running event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Started and not closed (the loop may have ended by itself)."""
        return self._task is not None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``run()`` unless it is started already (``start()`` may be called twice)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(run(), name=self.name)

    async def close(self) -> None:
        """Cancel the task and wait until it is gone; nothing happens when it never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
