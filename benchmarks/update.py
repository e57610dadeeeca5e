"""Figures of an A/B update on this machine, with the real RAUC service (private D-Bus, file slots, an ESP folder):
the bundle's build time and size, the signature check, the install (check, write, resize, hook, boot entry) next
to its peer, a plain ``dd`` of the same root image into the slot (no signature, no boot entry, no hook); and the
office's download by URL (kioskd.update.download, over loopback from a server that cuts the body twice) next to
``curl`` fetching the same file whole, then with the same cuts resumed by ``curl -C -``.

The van's own figures (install in the virtual van, reboot → READY on the new slot, time to roll back) are printed by
``tests/vm/test_update.py``. Usage: ``python benchmarks/update.py [--mib 256] [--runs 3]``."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kioskd.clock import RealClock
from kioskd.update.download import Download
from tests.integration.bundle_server import bundle_server
from tests.integration.rauc_service import rauc_van, sha256


def download_figures(bundle: Path, work: Path, runs: int) -> None:
    """The bundle over loopback: kioskd's download whole and cut twice (resumed with Range), curl the same."""
    digest = sha256(bundle)
    size = bundle.stat().st_size
    office = work / "office"
    office.mkdir()
    (office / "v.raucb").write_bytes(bundle.read_bytes())
    ours: dict[str, list[float]] = {"whole": [], "cut": []}
    curls: dict[str, list[float]] = {"whole": [], "cut": []}
    with bundle_server(office) as server:
        url = server.url("v.raucb")
        for _ in range(runs):
            for kind in ("whole", "cut"):
                cuts = [size // 3, size // 3] if kind == "cut" else []
                server.cuts = list(cuts)
                folder = work / f"dl-{kind}"
                subprocess.run(["rm", "-rf", str(folder)], check=True)
                started = time.monotonic()
                asyncio.run(Download(url, digest, folder, RealClock(), retry_min=0.0).fetch())
                ours[kind].append(time.monotonic() - started)
                server.cuts = list(cuts)
                out = work / f"curl-{kind}"
                out.unlink(missing_ok=True)
                started = time.monotonic()
                for _attempt in range(len(cuts) + 1):  # curl -C - resumes from the file's size, a try per cut
                    if subprocess.run(["curl", "-sf", "-C", "-", "-o", str(out), url]).returncode == 0:
                        break
                subprocess.run(["sha256sum", str(out)], check=True, capture_output=True)  # the same hash check
                curls[kind].append(time.monotonic() - started)
                assert out.stat().st_size == size
    for kind, what in (("whole", "whole"), ("cut", "cut twice, resumed")):
        print(f"download {size / 1e6:.0f} MB over loopback, {what}: kioskd {statistics.median(ours[kind]):.2f} s "
              f"(with its sha256), curl {statistics.median(curls[kind]):.2f} s (then sha256sum)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=128, help="incompressible payload of the root, MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kioskd-update-bench-") as tmp, rauc_van(Path(tmp)) as van:
        installs, dds, checks = [], [], []
        for run in range(args.runs):
            started = time.monotonic()
            bundle = van.bundle(f"9.{run}", name=f"run{run}", payload=args.mib << 20)
            if run == 0:
                built = time.monotonic() - started
            client = van.client()
            started = time.monotonic()
            asyncio.run(client.info(bundle))
            checks.append(time.monotonic() - started)
            started = time.monotonic()
            asyncio.run(client.install(bundle))
            installs.append(time.monotonic() - started)
            image = bundle.parent / "bundle" / "content" / "root.ext4"
            started = time.monotonic()
            subprocess.run(["dd", f"if={image}", f"of={van.slots['b']}", "bs=4M", "conv=fsync,notrunc", "status=none"],
                           check=True)  # fmt: skip
            dds.append(time.monotonic() - started)
        size = bundle.stat().st_size
        root = image.stat().st_size
        download_figures(bundle, Path(tmp), args.runs)
    print(f"bundle: {size / 1e6:.1f} MB for a {root / 1e6:.0f} MB ext4 root ({args.mib} MiB incompressible); "
          f"built in {built:.1f} s")  # fmt: skip
    print(f"signature check (RAUC's Info over D-Bus): median {statistics.median(checks):.2f} s")
    print(f"install (check, write, resize2fs, hook, boot entry): median {statistics.median(installs):.2f} s "
          f"over {args.runs}; dd of the same image: {statistics.median(dds):.2f} s "
          f"(ratio {statistics.median(installs) / statistics.median(dds):.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
