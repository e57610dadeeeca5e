"""systemd integration: READY/STATUS/STOPPING/WATCHDOG notifications and logging to the journal.

Everything here is a no-op outside systemd (no ``NOTIFY_SOCKET``); the watchdog ping runs on the event loop, so a
stuck loop stops pinging and systemd restarts the daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import systemd.daemon as sd_daemon

log = logging.getLogger(__name__)


def notify(message: str) -> None:
    if os.environ.get("NOTIFY_SOCKET"):
        sd_daemon.notify(message)


def watchdog_interval() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when systemd asked this process for pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2 / 1_000_000
    except ValueError:
        log.warning("ignoring a malformed WATCHDOG_USEC")
        return None


async def watchdog_loop(interval: float) -> None:
    """Ping systemd from the event loop itself (real time: the watchdog is about the real loop, not the clock)."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def setup_logging(level: str = "INFO") -> None:
    """To the journal under systemd (structured, with priorities), to stderr otherwise."""
    root = logging.getLogger()
    root.setLevel(level)
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if under_systemd():
        import systemd.journal

        handler = systemd.journal.JournalHandler(SYSLOG_IDENTIFIER="kioskd")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # request lines could carry a path
