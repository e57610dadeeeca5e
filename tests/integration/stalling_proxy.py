"""A TCP proxy in front of ippeveprinter that holds each new connection for a set time before passing it on, as
ipp-usb does while the printer's few USB interfaces are busy. For the printer tests only; it stops its threads at
``close``, even when the test fails."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType


class StallingProxy:
    """Listens on a free loopback port; every connection it accepts waits ``stall`` seconds (read at accept time,
    changeable at any moment), then is joined to ``127.0.0.1:upstream``. ``held`` counts the connections it held;
    ``agents`` lists the User-Agent of each connection's first request, with its time (``time.monotonic``), so a
    test tells kioskd's probe (python-httpx) from CUPS's own backend (CUPS/…)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.stall = 0.0
        self.held = 0
        self.agents: list[tuple[float, str]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    @property
    def device_uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            self._spawn(self._serve, client, self.stall)

    def _serve(self, client: socket.socket, stall: float) -> None:
        if stall > 0:
            with self._lock:
                self.held += 1
            if self._closing.wait(stall):
                client.close()
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream), 5)
        except OSError:
            client.close()
            return
        self._track(upstream)
        self._spawn(self._pump, upstream, client)
        self._pump(client, upstream, first=self._note_agent)

    def _note_agent(self, request: bytes) -> None:
        match = re.search(rb"(?im)^user-agent:\s*([^\r\n]*)", request)
        with self._lock:
            self.agents.append((time.monotonic(), match[1].decode("latin-1") if match else ""))

    def probes_since(self, since: float) -> int:
        """How many connections kioskd's probe (httpx) opened from ``since`` (``time.monotonic``) on."""
        with self._lock:
            return sum(1 for at, agent in self.agents if at >= since and agent.startswith("python-httpx"))

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, first: Callable[[bytes], None] | None = None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if first is not None:
                    first(data)
                    first = None
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def stalling_proxy(upstream: int) -> Iterator[StallingProxy]:
    with StallingProxy(upstream) as proxy:
        yield proxy
