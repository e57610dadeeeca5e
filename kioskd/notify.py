"""systemd integration: READY/STATUS/STOPPING/WATCHDOG notifications and logging to the journal.

Everything here is a no-op outside systemd (no ``NOTIFY_SOCKET``); the watchdog ping runs on the event loop, so a
stuck loop stops pinging and systemd restarts the daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import systemd.daemon as sd_daemon

from kioskd.session.workspace import redact

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


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then cuts every path inside a session workspace out of the text (tracebacks included):
    an OSError deep in a handler must not put a citizen's file name in the journal."""

    def __init__(self, fmt: str, sessions_root: Path | None) -> None:
        super().__init__(fmt)
        self.sessions_root = sessions_root

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self.sessions_root is None else redact(text, self.sessions_root)


def setup_logging(level: str = "INFO", sessions_root: Path | None = None) -> None:
    """To the journal under systemd (structured, with priorities), to stderr otherwise; workspace paths redacted."""
    root = logging.getLogger()
    root.setLevel(level)
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if under_systemd():
        import systemd.journal

        handler = systemd.journal.JournalHandler(SYSLOG_IDENTIFIER="kioskd")
        handler.setFormatter(RedactingFormatter("%(name)s: %(message)s", sessions_root))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", sessions_root))
    root.addHandler(handler)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # request lines could carry a path
