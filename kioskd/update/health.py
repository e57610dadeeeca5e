"""The boot's health check, run by ``kioskd-update-health.service`` before ``boot-complete.target``: the slot is good
only when kioskd reached READY (a pending wipe included) and the doctor's essential lines pass. On failure the unit
reboots the PC (``FailureAction=reboot``): systemd-bless-boot does not bless the entry, systemd-boot counts one try
down, and after the last one it boots the other slot.

Essential means the PC itself, not the devices: a printer left unplugged must not abandon a good update. This room
only reads (systemctl, kioskctl doctor); it writes nothing and is run as root by systemd, not by kioskd."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# the doctor's lines that say whether the station can work at all on this slot (kioskd/doctor.py, _system, _store)
ESSENTIAL = ("disk", "runtime", "store", "app_user")


def unit_state(unit: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,Result", unit],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_ready(
    show: Callable[[], Mapping[str, str]], timeout: float, max_restarts: int, pause: Callable[[float], None]
) -> str:
    """'' once the unit is active (Type=notify: after READY=1), else why not: failed, restarted too often, too
    slow. ``show`` is ``systemctl show``'s answer, ``pause`` waits between looks."""
    deadline = time.monotonic() + timeout
    while True:
        state = show()
        active, sub = state.get("ActiveState", ""), state.get("SubState", "")
        if active == "active" and sub == "running":
            return ""
        if active == "failed":
            return f"kioskd failed ({state.get('Result', '?')})"
        restarts = int(state.get("NRestarts", "0") or 0)
        if restarts >= max_restarts:
            return f"kioskd restarted {restarts} times without reaching READY"
        if time.monotonic() > deadline:
            return f"kioskd not READY after {timeout:.0f} s ({active}/{sub})"
        pause(2.0)


def essential_failures(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The essential doctor lines that failed (or are missing: a doctor that could not say is not a pass)."""
    by_name = {str(check.get("name")): check for check in checks}
    failed = []
    for name in ESSENTIAL:
        check = by_name.get(name)
        if check is None:
            if name == "app_user":  # only profiles with a session app user have it
                continue
            failed.append(f"{name}: missing")
        elif check.get("verdict") == "fail":
            failed.append(f"{name}: {check.get('detail', '')}")
    return failed


def doctor(kioskctl: str, socket: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kioskctl, "--socket", socket, "--json", "doctor"], capture_output=True, text=True, check=False, timeout=300
    )
    try:
        checks: list[dict[str, Any]] = json.loads(result.stdout)["checks"]
    except (ValueError, KeyError):
        raise RuntimeError(
            f"kioskctl doctor gave no answer (exit {result.returncode}): {result.stderr[-300:]}"
        ) from None
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kioskd.update.health", description=__doc__)
    parser.add_argument("--unit", default="kioskd.service")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds kioskd may take to READY")
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--kioskctl", default="/opt/kioskd/bin/kioskctl")
    parser.add_argument("--socket", default="/run/kioskd/kioskd.sock")
    args = parser.parse_args(argv)
    started = time.monotonic()
    why = wait_ready(lambda: unit_state(args.unit), args.timeout, args.max_restarts, time.sleep)
    if why:
        print(f"kioskd-update-health: this slot is not healthy: {why}", flush=True)
        return 1
    try:
        failed = essential_failures(doctor(args.kioskctl, args.socket))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"kioskd-update-health: this slot is not healthy: {exc}", flush=True)
        return 1
    if failed:
        print(f"kioskd-update-health: essential doctor lines failed: {'; '.join(failed)}", flush=True)
        return 1
    print(
        f"kioskd-update-health: kioskd READY and the essential doctor lines pass ({time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
