"""libsane in a process of its own, serving one ``scanner.sane`` driver (drivers/scanner/sane.py) over a socket.

Why a process: libsane's reader threads (sanei_thread, built with pthreads on Debian) are cancelled
asynchronously by ``sane_cancel``. A thread cancelled inside ``free()`` leaves the malloc arena locked, and
``sane_cancel`` then waits forever for it; every later thread given that arena would hang on its first malloc too.
SANE's own ``test`` backend does it about once in twenty faults here. In the daemon's process that would freeze
the scanner for the day and, sooner or later, any thread of the station. Here it freezes this process only: the
driver stops waiting after its deadline, kills it, and starts a fresh one for the next job.

Started as ``python -m drivers.scanner.sane_child FD``: FD is its end of a socket pair. It says ``("ready", None)``
once python-sane imports (or ``("missing", why)``), then answers each request ``(op, args)`` with ``("ok", value)``,
``("sane", message)`` for a SANE error (libsane's status text) or ``("error", text)`` for anything else. It ends
when the driver closes the socket. It logs no pixel; libsane's own debug output (``SANE_DEBUG_*``) goes to stderr,
the journal.

Such a cancel leaves more than malloc broken: the dynamic loader's lock too (its unwinding loads libgcc_s), so
that even this process's ``exit()`` can hang; it ends with ``_exit``. In the daemon, any later ``dlopen`` (an NSS
lookup, a C extension's import) would have hung the station."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

# An open handle's options as the driver needs them: name (python-sane's, "-" as "_") → (constraint, active,
# settable).
OptionTable = dict[str, tuple[object, bool, bool]]


def options_of(handle: Any) -> OptionTable:
    return {key: (entry.constraint, entry.is_active(), entry.is_settable()) for key, entry in handle.opt.items()}


def serve(conn: Connection) -> None:
    # glibc loads the unwinder (libgcc_s) on the first pthread_cancel. Loaded then, while a reader thread runs,
    # the new library makes that thread's next TLS access take the loader's TLS lock, where the asynchronous
    # cancel catches it: the lock stays held and the next page's pthread_create waits for it forever (seen at
    # every second page of a 150 dpi colour stack). Loaded now, before any reader thread, nothing changes then.
    ctypes.CDLL("libgcc_s.so.1")
    try:
        import sane
    except ImportError as exc:
        conn.send(("missing", f"python-sane does not import: {exc}"))
        return
    conn.send(("ready", None))
    handle: Any = None
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            break
        try:
            value: object = None
            if op == "init":
                sane.init()
            elif op == "devices":
                value = [tuple(str(part) for part in device) for device in sane.get_devices()]
            elif op == "open":
                handle = sane.open(args[0])
                value = options_of(handle)
            elif op == "get":
                value = getattr(handle, args[0], None)
            elif op == "set":
                setattr(handle, args[0], args[1])
                value = options_of(handle)  # a write may change the others (SANE_INFO_RELOAD_OPTIONS)
            elif op == "start":
                handle.start()
            elif op == "read":
                # The started frame, read to its end (no cancel: an ADF stack goes on at the next start).
                value = handle.dev.snap(True, True, None)
            elif op == "cancel":
                handle.cancel()
            elif op == "close":
                closing, handle = handle, None
                if closing is not None:
                    closing.cancel()
                    closing.close()
            else:
                raise ValueError(f"unknown request {op!r}")
        except sane._sane.error as exc:
            conn.send(("sane", str(exc)))
        except Exception as exc:
            conn.send(("error", f"{op}: {type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", value))


def main() -> None:
    conn = Connection(socket.socket(fileno=int(sys.argv[1])).detach())
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the driver went away: nobody to answer
        serve(conn)
    # Straight out, without the C library's exit handlers: after a reader thread was cancelled, the dynamic
    # loader's lock can be left held too (seen: exit() waiting in _dl_fini for good after a failed read).
    os._exit(0)


if __name__ == "__main__":
    main()
