"""A kioskd-like process for the media sandbox tests: run as an unprivileged user with ambient capabilities (as the
van's kioskd.service runs kioskd), it drives the real FUSE backend over stdin, one JSON command a line, and answers
one JSON line each. It holds no assertion: the test reads the driver's /proc from outside."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from drivers.media.fuse import FuseMedia
from kioskd.clock import RealClock
from kioskd.hal import DeviceError, DriverContext


async def serve(config: dict[str, Any]) -> None:
    ctx = DriverContext(
        "media",
        "fuse",
        {"udev": False, "fuse_user": config["fuse_user"]},
        RealClock(),
        lambda event: None,
        Path(config["runtime"]),
    )
    media = FuseMedia(ctx)
    await media.start()
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            order = json.loads(line)
            answer: dict[str, Any] = {}
            try:
                if order["do"] == "plug":
                    stick = media.arrive("stick-1", order["source"])
                    answer = {"filesystem": stick.filesystem, "supported": stick.supported}
                elif order["do"] == "mount":
                    await media.mount("stick-1", Path(order["target"]), "session-1", None)
                    answer = {"pids": media._volumes["stick-1"].pids}
                elif order["do"] == "read":
                    answer = {"data": await asyncio.to_thread(Path(order["path"]).read_text)}
                elif order["do"] == "export":
                    result = await media.export("stick-1", [Path(f) for f in order["files"]])
                    answer = {"files": result.files, "fault": result.fault, "folder": result.folder}
                    answer["pids"] = media._volumes["stick-1"].pids
                elif order["do"] == "eject":
                    await media.eject("stick-1")
            except DeviceError as exc:
                answer = {"error": str(exc), "action": exc.action}
            print(json.dumps(answer), flush=True)
    finally:
        await media.close()


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
