"""The cost of confining the session app (``kioskd/session/confine.py``) on session open: the time from "start the
app" to the app's exec, median of N, through the launcher (own mount and IPC namespace, the PC read-only, private
tmpfs places, capabilities dropped) next to the plain ``subprocess`` start kioskd used before (user switch only).
Prints figures; asserts nothing. Run as root (the app runs as ``nobody``).

Usage: .venv/bin/python benchmarks/session_launch.py [--runs 30]"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import statistics
import tempfile
import time
from pathlib import Path

from kioskd.clock import RealClock
from kioskd.session.app import AppUser, SessionApp, environment
from kioskd.session.workspace import Workspace, create, remove


async def plain(ws: Workspace, user: AppUser) -> float:
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "sleep",
        "30",
        env=environment("bench", ws),
        cwd=ws.home,
        start_new_session=True,
        user=user.uid,
        group=user.gid,
        extra_groups=[],
        umask=0o007,
    )
    took = time.perf_counter() - start
    process.kill()
    await process.wait()
    return took


async def confined(ws: Workspace, app: SessionApp) -> float:
    start = time.perf_counter()
    await app.start("bench", ws)
    took = time.perf_counter() - start
    assert app.confined == "confined", app.confined
    assert app.process is not None
    app.process.kill()
    await app.process.wait()
    return took


async def main(runs: int) -> None:
    entry = pwd.getpwnam("nobody")
    user = AppUser("nobody", entry.pw_uid, entry.pw_gid)
    base = Path(tempfile.mkdtemp(prefix="kb-", dir="/tmp"))
    os.chmod(base, 0o755)
    ws = await create(base / "ws", "tmpfs", "64m", share_gid=user.gid)
    app = SessionApp(["sleep", "30"], grace=1, clock=RealClock(), user=user)
    try:
        for _ in range(3):  # warm the page cache for both
            await plain(ws, user)
            await confined(ws, app)
        before = [await plain(ws, user) for _ in range(runs)]
        after = [await confined(ws, app) for _ in range(runs)]
    finally:
        await remove(ws.root)
        os.rmdir(base)
    old, new = statistics.median(before) * 1000, statistics.median(after) * 1000
    print(f"session app start, median of {runs} (ms): plain subprocess {old:.1f}, confined launcher {new:.1f}")
    p90 = sorted(after)[int(runs * 0.9)] * 1000
    print(f"cost of confinement: +{new - old:.1f} ms per session open (confined p90 {p90:.1f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
