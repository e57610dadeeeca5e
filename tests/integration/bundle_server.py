"""The office's bundle server for tests: a real HTTP server on loopback (the standard library's, on its own thread)
that serves files with byte ranges, as nginx or any CDN does, and can cut the connection after a given number of
body bytes, to prove a download resumes. It records every request's ``Range`` header."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class BundleServer:
    folder: Path
    port: int = 0
    cuts: list[int] = field(default_factory=list)  # the next requests' cut points (body bytes sent), in order
    ranges: bool = True  # False: a server that ignores Range and always sends the whole file (200)
    seen: list[str] = field(default_factory=list)  # each request's Range header ("" when none)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: BundleServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("Range", "")
            server.seen.append(asked)
            path = server.folder / self.path.lstrip("/")
            if "/" in self.path.lstrip("/") or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            found = RANGE.match(asked) if server.ranges else None
            if found is not None:
                start = int(found[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            cut = server.cuts.pop(0) if server.cuts else None
            if cut is None:
                self.wfile.write(body)
                return
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):  # the cable pulled: no more bytes, the socket closed
                self.connection.shutdown(2)

    return Handler


@contextlib.contextmanager
def bundle_server(folder: Path) -> Iterator[BundleServer]:
    server = BundleServer(folder)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="bundle-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
