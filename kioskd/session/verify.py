"""The wipe's verification: the workspace is gone, no process of the session survives, the printer lists no job
of it. It reports problems in a technician's words (counts, never a path inside the workspace); it removes nothing.

No process left is also what proves the app's private /tmp, /var/tmp, /dev/shm, /run/lock and System V IPC gone:
they live in the mount and IPC namespaces its launcher made (``confine.py``), which the kernel frees with their last
process (the app user holds no capability to pin one by a bind mount of its ``/proc/<pid>/ns`` file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kioskd.hal import Printer
from kioskd.session import workspace as ws_ops
from kioskd.session.app import AppUser, session_processes


async def verify(root: Path, session_id: str, printer: Printer, app_user: AppUser | None) -> list[str]:
    """What is left of the session whose workspace was ``root``: [] when the wipe is complete."""
    problems = ws_ops.leftovers(root)
    survivors = await asyncio.to_thread(session_processes, session_id, app_user)
    if survivors:
        problems.append(f"{len(survivors)} process(es) of the session still running")
    try:
        problems += list(await printer.verify_purged(session_id))
    except Exception as exc:
        problems.append(f"printer verification failed: {type(exc).__name__}")
    return problems
