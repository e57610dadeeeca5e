"""The event bus: drivers publish typed events, policies and the API subscribe.

Delivery happens on the event loop only; a driver thread hands its events over with ``publish_threadsafe``.
A subscriber that raises is logged and kept; it never stops delivery to the others."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from kioskd.hal import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class EventBus:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._handlers: list[tuple[type[Event], Handler]] = []
        self._loop = loop
        self._loop_thread: int | None = None
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the running loop (done once by the daemon before drivers start)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def subscribe(self, handler: Handler, kind: type[Event] = Event) -> Callable[[], None]:
        """Call ``handler`` for every event of type ``kind``; returns the function that unsubscribes it."""
        entry = (kind, handler)
        self._handlers.append(entry)

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` now, on the loop thread; from another thread, schedule it on the loop."""
        if self._loop is not None and self._loop_thread not in (None, threading.get_ident()):
            self._loop.call_soon_threadsafe(self.publish, event)
            return
        self.published += 1
        for kind, handler in list(self._handlers):
            if isinstance(event, kind):
                try:
                    handler(event)
                except Exception:
                    log.exception("event handler %r failed on %s", handler, type(event).__name__)

    publish_threadsafe = publish

    def queue(self, kind: type[Event] = Event, maxsize: int = 1000) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A queue fed with events of ``kind`` (for streams); the oldest event is dropped when it is full."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize)

        def put(event: Event) -> None:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

        return q, self.subscribe(put, kind)
