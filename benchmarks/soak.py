"""The soak: 1,000 citizen sessions on the simulated van through a real kioskd, each with a scan, a print and the
files a citizen leaves (a download, a note, a cookie), every 50th with a real headless Chromium that visits a page
setting a cookie and local storage, each ended by a verified wipe. Prints: canary residues (must be 0), kioskd's RSS
and open file descriptors at sessions 1, 100 and 1,000, the wipe time p50/p99 (from the receipts), and the privacy
audit (every captured log, the store and the runtime/state dirs grepped for the canaries and the document names).
Asserts nothing; ``make soak`` runs it (with the 10,000-example fuzzers).

Usage: .venv/bin/python benchmarks/soak.py [--sessions 1000] [--chromium-every 50]"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the page server is the integration tests' own

from tests.integration.page_server import one_page  # noqa: E402

PREFIX = "SOAKCANARY"
DOC_NAME = "avis-imposition-soak"  # a document name a citizen's download would carry: must reach no log

# The session app: a shell launcher that leaves a citizen's files, and about every Nth session (picked from the
# session id: the app keeps nothing between citizens, its confinement refuses any place outside the workspace, and it
# gets only the daemon's few environment variables) becomes Chromium. EVERY and PORT are filled in by ``profile``.
APP = f"""
set -e
canary="{PREFIX}-$KIOSK_SESSION"
echo "$canary" > "$HOME/notes.txt"
printf '%s' "%PDF-1.4 $canary" > "$XDG_DOWNLOAD_DIR/{DOC_NAME}.pdf"
n=$(printf %s "$KIOSK_SESSION" | cksum | cut -d' ' -f1)
if [ $((n % @EVERY@)) -eq 0 ]; then
  exec chromium --headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking \\
    --disable-component-update --disable-sync --user-data-dir="$1" "http://127.0.0.1:@PORT@/?c=$canary"
fi
exec sleep 3600
"""

PAGE = """<!doctype html><meta charset="utf-8"><script>
const c = new URLSearchParams(location.search).get('c');
localStorage.setItem('canary', c); document.cookie = 'c=' + c + '; max-age=86400';
</script><p>démarche</p>"""


def minimal_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def profile(tmp: Path, every: int, port: int) -> Path:
    text = (ROOT / "profiles" / "sim.toml").read_text()
    app = APP.replace("@EVERY@", str(every)).replace("@PORT@", str(port))
    text = text.replace("app = []", f"app = {json.dumps(['sh', '-c', app, 'app', '{browser}'])}")
    text = text.replace("page_seconds = 4.0", "page_seconds = 0.02")  # scanner
    text = text.replace("paper = 250", "paper = 1000\npage_seconds = 0.02")  # printer
    text = text.replace("print_grace = 60.0", "print_grace = 10.0").replace("app_grace = 5.0", "app_grace = 2.0")
    path = tmp / "profile.toml"
    path.write_text(text)
    return path


def ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kioskctl"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def resources(pid: int) -> tuple[float, int]:
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def grep(roots: list[Path], needles: list[bytes]) -> list[str]:
    hits = []
    for root in roots:
        paths = [root] if root.is_file() else [Path(d) / f for d, _, files in os.walk(root) for f in files]
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits += [f"{path}: {needle[:24]!r}" for needle in needles if needle in data]
    return hits


def wipe_seconds(receipt: dict[str, object]) -> float:
    """A wipe's duration from its receipt: the app's stop, then the concurrent handlers (the slowest counts), then
    the workspace (the three stages of kioskd.session)."""
    times = {h["name"]: h["seconds"] for h in receipt["handlers"]}  # type: ignore[attr-defined]
    staged = times.pop("app", 0.0) + times.pop("workspace", 0.0)
    return float(staged + max(times.values(), default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--chromium-every", type=int, default=50)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    runtime = Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))  # short: Chromium's socket paths
    server = one_page(PAGE.encode())
    env = {
        **os.environ,
        "KIOSKD_SOCKET": str(runtime / "kioskd.sock"),
    }
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify.sock"))
    threading.Thread(target=lambda: [notify.recv(4096) for _ in iter(int, 1)], daemon=True).start()
    log = open(tmp / "kioskd.log", "w")  # noqa: SIM115 - open for the daemon's whole life
    station = profile(tmp, opts.chromium_every, server.port)
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "kioskd"), "--profile", str(station), "--runtime-dir", str(runtime),
         "--state-dir", str(tmp / "state"), "--port", "0"],
        env={**env, "NOTIFY_SOCKET": str(tmp / "notify.sock")}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    pdf = tmp / "page.pdf"
    pdf.write_bytes(minimal_pdf())
    figures: dict[int, tuple[float, int]] = {}
    failures: list[str] = []
    start = time.monotonic()
    try:
        for _ in range(200):
            if ctl(env, "status").returncode == 0:
                break
            time.sleep(0.1)
        ctl(env, "start")
        for n in range(1, opts.sessions + 1):
            for args in (("next",), ("scan",), ("print", str(pdf))):
                result = ctl(env, *args)
                if result.returncode != 0:
                    failures.append(f"session {n} {args[0]}: {result.stderr.strip()[:120]}")
            if n in (1, 100, opts.sessions) or n % 100 == 0:
                figures[n] = resources(daemon.pid)
                print(f"  session {n:>5}: RSS {figures[n][0]:.1f} MiB, {figures[n][1]} fds, "
                      f"{time.monotonic() - start:.0f} s", flush=True)  # fmt: skip
        ctl(env, "end-of-day")
        elapsed = time.monotonic() - start
        receipts = json.loads(ctl(env, "--json", "receipts", "--limit", "500").stdout)
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
        server.close()
    wipe_ms = sorted(wipe_seconds(r) * 1000 for r in receipts)
    canaries = [PREFIX.encode(), PREFIX.encode("utf-16-le"), DOC_NAME.encode()]
    residues = grep([runtime, tmp / "state"], canaries)
    log_hits = grep([tmp / "kioskd.log"], canaries)
    unverified = [r for r in receipts if not r["verified"]]
    print(f"soak: {opts.sessions} sessions in {elapsed:.0f} s ({elapsed / opts.sessions * 1000:.0f} ms each), "
          f"Chromium every {opts.chromium_every}th, {len(failures)} command failures")  # fmt: skip
    for n, (rss, fds) in sorted(figures.items()):
        if n in (1, 100, opts.sessions):
            print(f"  kioskd at session {n:>5}: RSS {rss:.1f} MiB, {fds} open fds")
    p99 = wipe_ms[int(len(wipe_ms) * 0.99) - 1]
    print(f"  wipe time over the last {len(wipe_ms)} receipts: p50 {statistics.median(wipe_ms):.0f} ms, "
          f"p99 {p99:.0f} ms, max {wipe_ms[-1]:.0f} ms; unverified {len(unverified)}")  # fmt: skip
    print(f"  canary residues in runtime/state dirs: {len(residues)}")
    print(f"  privacy audit (log, store, dirs: canaries and document names): {len(residues) + len(log_hits)} hits")
    for line in failures[:5] + residues[:5] + log_hits[:5]:
        print("   !", line)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    main()
