"""A web page server on 127.0.0.1 for a browser under test (a public-service site, another origin): each GET is
answered by a function of its path, in a thread, until ``close``. It serves what it is given, nothing from disk."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HTML = {"Content-Type": "text/html; charset=utf-8"}


class PageServer:
    """``answer(path)`` (the request's path with its query) gives each GET's body, sent with status 200 and
    ``headers``; ``url`` is the server's root, ``port`` its port (any free one)."""

    def __init__(self, answer: Callable[[str], bytes], headers: Mapping[str, str] = HTML) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                body = answer(self.path)
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> PageServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def one_page(page: bytes, headers: Mapping[str, str] = HTML) -> PageServer:
    """A server that answers ``page`` at every path."""
    return PageServer(lambda _: page, headers)
