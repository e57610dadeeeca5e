"""The wipe's receipt and the visit it ends, as facts handed back to the station in the wipe's outcome: session id,
times, reason, handler verdicts, counts and the stop. No personal data by construction. Writing them (and turning
a visit into the office's local day and hour) is the recorder's job (``kioskd.records``), not the wipe's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Visit:
    """The citizen's visit a wipe ended: where it was opened, when, for how long, what was scanned and printed."""

    stop: str | None
    opened_at: float
    seconds: float
    scans: int
    prints: int
    reason: str
    handovers: int = 0  # filled in by the hand-over policy (kioskd/policies/handover.py): counts and seconds only
    handover_seconds: float = 0.0
    confidential: int = 0
    confidential_seconds: float = 0.0


@dataclass(frozen=True)
class WipeReceipt:
    session: str
    opened_at: float | None
    closed_at: float
    reason: str
    verified: bool
    handlers: list[dict[str, Any]]
    problems: list[str]
    scans: int = 0
    downloads: int = 0
    prints: int = 0
    media_mounted: int = 0  # the citizen's sticks mounted in the session (counts only)
    media_exported: int = 0  # files written to them
    visit: Visit | None = None  # None when an earlier attempt already counted it, or its start is unknown


def opened_at(journal: dict[str, object]) -> float | None:
    opened = journal.get("opened_at")
    return float(opened) if isinstance(opened, int | float) else None


def visit_of(journal: dict[str, object], started: float, reason: str, scans: int, prints: int) -> Visit | None:
    """The visit a wipe started at ``started`` ends; None when the journal says it was counted already (a retried
    wipe) or does not know when it opened (a stray workspace without journal)."""
    opened = opened_at(journal)
    if journal.get("counted") or opened is None:
        return None
    stop = journal.get("stop")
    return Visit(
        stop=stop if isinstance(stop, str) else None,
        opened_at=opened,
        seconds=round(max(0.0, started - opened), 1),
        scans=scans,
        prints=prints,
        reason=reason,
    )
