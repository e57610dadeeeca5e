"""The video-call check ("Visio possible"): round-trip time, jitter and throughput each way through one uplink's
interface, to the office's server named in the profile, a few hundred kB at most.

Network measurement only, like the reachability probe: when to run it (rate-limited, never during a session) and
what to show is the connectivity policy's. It sends nothing about anyone: zeros up, discards what comes down."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import statistics
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

CONNECTS = 5  # TCP handshakes timed for the round trip and its jitter
CHUNK = 16_384


@dataclass(frozen=True)
class VisioCheck:
    """One check of one uplink: figures, and whether a video call will hold on them."""

    uplink: str
    at: float  # wall clock
    possible: bool
    rtt: float | None = None  # seconds, median TCP handshake
    jitter: float | None = None  # seconds, mean difference between consecutive handshakes
    down_kbps: float | None = None
    up_kbps: float | None = None


def bind_options(interface: str | None) -> list[tuple[int, int, bytes]]:
    """The socket option that makes traffic leave by ``interface`` whatever the routes say (SO_BINDTODEVICE: since
    Linux 5.7 it needs no CAP_NET_RAW on a socket not bound yet, so it works under kioskd's unit)."""
    return [] if interface is None else [(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())]


async def connect(parts: SplitResult, interface: str | None) -> socket.socket:
    """A TCP socket to the URL's host, bound to ``interface`` before it connects (httpx sets socket options only
    once connected, when its connection has taken the default route already)."""
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    try:
        for level, option, value in bind_options(interface):
            sock.setsockopt(level, option, value)
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def exchange(url: str, interface: str | None, method: str = "GET", upload: int = 0, download: int = 0) -> int:
    """One HTTP/1.1 request through ``interface`` (``upload`` zero bytes as its body); reads the status line and
    at most ``download`` bytes of the answer; returns the status."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    sock = await connect(parts, interface)
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=context, server_hostname=parts.hostname if secure else None
    )
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nCache-Control: no-cache\r\nConnection: close\r\n"
        if upload:
            head += f"Content-Type: application/octet-stream\r\nContent-Length: {upload}\r\n"
        writer.write((head + "\r\n").encode())
        zeros = bytes(CHUNK)
        left = upload
        while left > 0:
            writer.write(zeros[: min(left, CHUNK)])
            left -= CHUNK
            await writer.drain()
        await writer.drain()
        words = (await reader.readline()).split()
        if len(words) < 2 or not words[0].startswith(b"HTTP/"):
            raise ValueError("not an HTTP answer")
        while download > 0 and (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # the answer's headers
        while download > 0:
            data = await reader.read(min(download, CHUNK))
            if not data:
                break
            download -= len(data)
        return int(words[1])
    finally:
        writer.close()


async def handshake_times(url: str, interface: str | None) -> list[float]:
    parts = urlsplit(url)
    times = []
    for _ in range(CONNECTS):
        began = time.monotonic()  # a network measurement, not a policy delay: the real clock is the point
        sock = await connect(parts, interface)
        times.append(time.monotonic() - began)
        sock.close()
    return times


async def measure(
    url: str,
    uplink: str,
    interface: str | None,
    size: int,
    at: float,
    min_kbps: float,
    max_rtt: float,
    max_jitter: float,
) -> VisioCheck:
    """The check (the caller bounds its time): handshakes, then ``size`` bytes down (GET) and up (POST)."""
    try:
        times = await handshake_times(url, interface)
        rtt = statistics.median(times)
        jitter = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(times))
        began = time.monotonic()
        await exchange(url, interface, download=size)
        down = size * 8 / 1000 / max(time.monotonic() - began, 1e-6)
        began = time.monotonic()
        await exchange(url, interface, method="POST", upload=size)
        up = size * 8 / 1000 / max(time.monotonic() - began, 1e-6)
    except (OSError, ValueError):
        return VisioCheck(uplink, at, False)
    possible = rtt <= max_rtt and jitter <= max_jitter and down >= min_kbps and up >= min_kbps
    return VisioCheck(uplink, at, possible, round(rtt, 4), round(jitter, 4), round(down), round(up))
