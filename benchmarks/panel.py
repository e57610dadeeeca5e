"""The agent panel in Debian's Chromium against a real kioskd on the simulated van: time from a sim verb (the
modem's signal) to the panel's DOM showing it, p50/p99 over 50 changes, next to a bare SSE client reading the same
stream (the panel's own cost is the difference); and the page's weight on the wire. Prints figures; asserts nothing."""

from __future__ import annotations

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

import httpx
from playwright.sync_api import sync_playwright

BIN = Path(sys.executable).parent
CHANGES = 50
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

# Records when the signal figure in the modem tile changes, on the page's own clock (epoch milliseconds).
OBSERVE = """() => {
  window.seen = {};
  const tile = document.querySelector('#tile-modem');
  new MutationObserver(() => {
    const dd = tile.querySelector('[data-field=signal]');
    const m = dd && dd.textContent.match(/(\\d+) %/);
    if (m && !(m[1] in window.seen)) window.seen[m[1]] = performance.timeOrigin + performance.now();
  }).observe(tile, {childList: true, subtree: true, characterData: true});
}"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kb-", dir="/tmp"))  # short: Chromium's sockets live under TMPDIR
    os.environ["TMPDIR"] = str(tmp)
    notify = tmp / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(60)
    proc = subprocess.Popen(
        [str(BIN / "kioskd"), "--runtime-dir", str(tmp / "run"), "--state-dir", str(tmp / "state"), "--port", "0"],
        env={**os.environ, "NOTIFY_SOCKET": str(notify)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in listener.recv(4096):
            pass
        port = json.loads((tmp / "run" / "api.json").read_text())["port"]
        token = (tmp / "run" / "panel-token").read_text().strip()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        httpx.post(base + "/start", headers=auth, timeout=30)

        sse_seen: dict[int, float] = {}

        def follow() -> None:  # the bare SSE client: what any subscriber gets, without rendering
            with httpx.stream("GET", base + "/events", headers=auth, timeout=None) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        signal = json.loads(line[6:])["modem"]["signal"]
                        sse_seen.setdefault(signal, time.time() * 1000)

        threading.Thread(target=follow, daemon=True).start()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            sizes: dict[str, int] = {}
            urls: dict[str, str] = {}
            cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
            cdp.on(
                "Network.loadingFinished",
                lambda e: sizes.__setitem__(urls.get(e["requestId"], "?"), int(e["encodedDataLength"])),
            )
            started = time.perf_counter()
            page.goto(f"{base}/#token={token}")
            page.wait_for_selector("#tile-modem [data-field=signal]")
            page.wait_for_load_state("networkidle")
            loaded = time.perf_counter() - started
            page.evaluate(OBSERVE)

            sent: dict[int, float] = {}
            values = [v for v in range(1, 100) if v != 70][:CHANGES]  # 70: the profile's start value
            for value in values:
                sent[value] = time.time() * 1000
                httpx.post(base + "/sim/signal", json={"args": [str(value)]}, headers=auth, timeout=30)
                time.sleep(0.05)
            page.wait_for_function(f"Object.keys(window.seen).length >= {len(values)}", timeout=30_000)
            dom_seen = {int(k): v for k, v in page.evaluate("window.seen").items()}
            browser.close()

        dom = [dom_seen[v] - sent[v] for v in values]
        sse = [sse_seen[v] - sent[v] for v in values if v in sse_seen]
        print(f"panel: sim verb → DOM update over {len(dom)} changes (ms)")
        print(f"  panel DOM      p50 {statistics.median(dom):6.1f}   p99 {percentile(dom, 99):6.1f}")
        print(f"  bare SSE read  p50 {statistics.median(sse):6.1f}   p99 {percentile(sse, 99):6.1f}  (httpx client)")
        total = sum(sizes.values())
        print(f"panel: page weight {total / 1000:.1f} kB on the wire (uncompressed), first render {loaded:.2f} s")
        for url, size in sorted(sizes.items(), key=lambda item: -item[1]):
            print(f"  {size / 1000:6.1f} kB  {url.removeprefix(base).split('#')[0]}")
    finally:
        proc.terminate()
        proc.wait(30)
        listener.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
