"""SANE's ``test`` backend as a private service for the scanner tests: our own SANE config dir, a scanner context
that records its events, and page hooks that make the backend fail at a chosen page.

libsane runs in a process of the driver's own (drivers/scanner/sane_child.py), which inherits ``SANE_CONFIG_DIR``
when it starts: the config dir is set before a scanner starts and kept for the whole test process."""

from __future__ import annotations

import asyncio
import glob
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kioskd.clock import RealClock
from kioskd.hal import DriverContext, Event
from tests.integration import require

# A full A4 (210 × 297 mm) must fit the test backend's scan area: its stock config stops at 200 mm.
TEST_CONF = """\
number_of_devices 2
geometry_min 0.0
geometry_max 300.0
geometry_quant 1.0
tl_x 0.0
tl_y 0.0
br_x 210.0
br_y 297.0
"""
SANE_BACKENDS = "/usr/lib/*/sane/libsane-test.so.1"

_config_dir: Path | None = None


def _require_sane() -> None:
    require.binary("scanimage", "sane-utils")
    if not glob.glob(SANE_BACKENDS):
        pytest.fail("SANE's test backend is not installed: run `apt-get install libsane1` (or `make test`)")
    try:
        import sane  # noqa: F401
    except ImportError:
        pytest.fail("python-sane is not installed: run `apt-get install libsane-dev` then `make test`")


@contextmanager
def sane_test_backend(base: Path) -> Iterator[Path]:
    """A SANE config dir under ``base`` that lists only the ``test`` backend, set as this process's
    ``SANE_CONFIG_DIR``; the same dir for every later use in the process (libsane has read it already)."""
    global _config_dir
    _require_sane()
    if _config_dir is None:
        config = base / "sane.d"
        config.mkdir(parents=True, exist_ok=True)
        (config / "dll.conf").write_text("test\n")
        (config / "test.conf").write_text(TEST_CONF)
        _config_dir = config
    previous = os.environ.get("SANE_CONFIG_DIR")
    # No trailing ':' — that would make libsane search /etc/sane.d as well and find the machine's scanners.
    os.environ["SANE_CONFIG_DIR"] = str(_config_dir)
    try:
        yield _config_dir
    finally:
        if previous is None:
            os.environ.pop("SANE_CONFIG_DIR", None)
        else:
            os.environ["SANE_CONFIG_DIR"] = previous


@dataclass
class EventLog:
    """What a backend emitted, from any thread, in order; ``wait_for`` lets a coroutine wait for one."""

    events: list[Event] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def emit(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of(self, kind: type[Event]) -> list[Any]:
        with self._changed:
            return [event for event in self.events if isinstance(event, kind)]

    def wait(self, check: Callable[[], bool], within: float = 5.0) -> None:
        """Block this thread until an emit makes ``check()`` true."""
        with self._changed:
            if not self._changed.wait_for(check, within):
                raise AssertionError(f"not reached within {within} s; events: {self.events}")

    async def wait_for(self, check: Callable[[], bool], within: float = 5.0) -> None:
        """Until ``check()`` is true, waiting on the emits in a thread so the loop stays free."""
        await asyncio.get_running_loop().run_in_executor(None, self.wait, check, within)


def scanner_context(runtime: Path, log: EventLog, **options: Any) -> DriverContext:
    """The context a ``scanner.sane`` backend gets from the daemon, with ``options`` as its profile section."""
    return DriverContext(
        kind="scanner", driver="sane", options=options, clock=RealClock(), emit=log.emit, runtime_dir=runtime
    )


def read_status_at(page: int, status: str) -> Callable[[int, int], dict[str, object]]:
    """A ``before_page`` hook: the test backend answers ``status`` (e.g. ``SANE_STATUS_JAMMED``) when page
    ``page`` is read, and normally for every other page."""

    def hook(number: int, opened: int) -> dict[str, object]:
        return {"read-return-value": status if number == page else "Default"}

    return hook
