"""How fast kioskd is up (process start to READY=1, median of 10, next to `python -c pass`) and what it costs
idle (RSS and CPU over 30 s). Prints figures; asserts nothing."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def time_to_ready(tmp: Path, n: int) -> float:
    notify_path = tmp / f"notify-{n}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "kioskd"), "--runtime-dir", str(tmp / f"r{n}"), "--state-dir", str(tmp / f"s{n}"), "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in listener.recv(4096):
            pass
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(30)
        listener.close()


def python_pass() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def idle_cost(tmp: Path, seconds: float = 30.0) -> tuple[float, float]:
    """(RSS in MiB after start-up, CPU % over ``seconds`` idle) from /proc."""
    proc = subprocess.Popen(
        [str(BIN / "kioskd"), "--runtime-dir", str(tmp / "idle-r"), "--state-dir", str(tmp / "idle-s"), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        before = cpu()
        time.sleep(seconds)
        used = cpu() - before
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return rss_kib / 1024, 100 * used / seconds
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        time_to_ready(tmp, 99)  # warm the page cache
        ready = [time_to_ready(tmp, n) for n in range(10)]
        bare = [python_pass() for _ in range(10)]
        rss, cpu = idle_cost(tmp)
    print("kioskd start-up (process start → READY=1), sim profile")
    print(f"  kioskd READY=1      median {statistics.median(ready) * 1000:7.1f} ms  (min {min(ready) * 1000:.1f})")
    print(f"  python -c pass      median {statistics.median(bare) * 1000:7.1f} ms")
    print(f"  ratio               {statistics.median(ready) / statistics.median(bare):7.1f} ×")
    print(f"idle over 30 s: RSS {rss:.1f} MiB, CPU {cpu:.2f} %")


if __name__ == "__main__":
    main()
