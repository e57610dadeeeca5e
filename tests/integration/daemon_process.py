"""Runs ``kioskd`` as a real subprocess with a notify socket owned by the test, like systemd would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    """A running kioskd; a thread reads its notify socket at once, as systemd does (an unread datagram socket
    fills up after a few messages and would block the daemon's sd_notify)."""

    proc: subprocess.Popen[str]
    notify: socket.socket
    runtime: Path
    state: Path
    log: Path
    messages: list[str] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        self.notify.settimeout(0.2)
        while True:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()

    @property
    def socket_path(self) -> Path:
        return self.runtime / "kioskd.sock"

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """The first notify message with a line starting with ``prefix`` (READY=1, STATUS=ready …)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if any(line.startswith(prefix) for line in message.splitlines()):
                        return message
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {prefix} from kioskd within {timeout} s; log:\n{self.log.read_text()}")
                if self.proc.poll() is not None and time.monotonic() > deadline - timeout + 1:
                    self._arrived.wait(0.5)
                    if not any(prefix in m for m in self.messages):
                        raise AssertionError(
                            f"kioskd exited ({self.proc.returncode}) before {prefix}: {self.log.read_text()}"
                        )
                self._arrived.wait(0.2)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KIOSKD_SOCKET": str(self.socket_path)}
        result = subprocess.run(
            [str(Path(sys.executable).parent / "kioskctl"), *args], capture_output=True, text=True, env=env, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kioskctl {' '.join(args)} failed: {result.stderr}")
        return result

    def status(self) -> dict[str, object]:
        return json.loads(self.ctl("--json", "status").stdout)  # type: ignore[no-any-return]

    def open_session(self) -> dict[str, Any]:
        """READY=1, then start the station and open a citizen's session; returns the session from the status."""
        self.wait_for("READY=1")
        self.ctl("start")
        self.ctl("next")
        session = self.status()["session"]
        assert isinstance(session, dict), "no session after start + next"
        return session

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()


def start_daemon(
    tmp: Path, *args: str, env: dict[str, str] | None = None, name: str = "kioskd", runtime: Path | None = None
) -> Daemon:
    """kioskd with its state in ``tmp``; ``runtime`` may be shorter than ``tmp/run`` (see ``short_runtime``)."""
    runtime, state = runtime or tmp / "run", tmp / "state"
    notify_path = tmp / f"{name}-notify.sock"
    notify_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    log = tmp / f"{name}.log"
    command = [
        str(Path(sys.executable).parent / "kioskd"),
        "--runtime-dir",
        str(runtime),
        "--state-dir",
        str(state),
        "--port",
        "0",
        *args,
    ]
    environment = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM")}
    environment.update({"NOTIFY_SOCKET": str(notify_path), **(env or {})})
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=environment, cwd=ROOT)
    return Daemon(proc, listener, runtime, state, log)


def short_runtime(tmp: Path) -> Path:
    """A runtime dir with a short path, linked from ``tmp/run``: a session app's unix sockets live in its TMPDIR
    under it, and a socket path longer than 107 bytes fails (Chromium's singleton socket does)."""
    path = Path(tempfile.mkdtemp(prefix="kw-", dir="/tmp"))
    (tmp / "run").symlink_to(path)
    return path
