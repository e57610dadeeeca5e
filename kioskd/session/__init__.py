"""The citizen session and its wipe: opening a workspace, the session app, the wipe journal, the wipe's handler
registry, its verification and its receipt. It knows devices only through ``kioskd.hal`` contracts, imports no
policy and no station, and writes nothing to the store: the receipt is handed back in the wipe's outcome."""

from kioskd.session.sessions import Session, Sessions
from kioskd.session.wipe import HandlerVerdict, WipeContext, WipeHandlers, WipeOutcome, WipeReason

__all__ = ["HandlerVerdict", "Session", "Sessions", "WipeContext", "WipeHandlers", "WipeOutcome", "WipeReason"]
