"""Nothing inside a session workspace reaches a log line, tracebacks included."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from kioskd.notify import RedactingFormatter
from kioskd.session.workspace import redact


def test_paths_inside_a_workspace_are_cut_after_the_session_id() -> None:
    root = Path("/run/kioskd/sessions")
    text = "open failed: '/run/kioskd/sessions/ab12cd34/scans/dupont-jean.pdf' and /run/kioskd/sessions/ab12cd34/x y"
    out = redact(text, root)
    assert "dupont" not in out and "/x" not in out
    assert out.count("/run/kioskd/sessions/ab12cd34/…") == 2
    assert redact("/run/kioskd/kioskd.sock is fine", root) == "/run/kioskd/kioskd.sock is fine"


def test_a_traceback_through_the_formatter_carries_no_file_name() -> None:
    formatter = RedactingFormatter("%(message)s", Path("/run/kioskd/sessions"))
    try:
        open("/run/kioskd/sessions/ab12cd34/downloads/avis-imposition-dupont.pdf")  # noqa: SIM115
    except OSError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "handler failed", None, sys.exc_info())
    text = formatter.format(record)
    assert "Traceback" in text and "ab12cd34/…" in text
    assert "dupont" not in text
