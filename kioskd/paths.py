"""Where kioskd keeps its runtime files (socket, session workspaces) and its state (wipe journal, store).

Under systemd these are ``$RUNTIME_DIRECTORY`` and ``$STATE_DIRECTORY``; otherwise per-user directories, so the
daemon and ``kioskctl`` agree on the socket without configuration."""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    if env := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(env.split(":")[0])
    if env := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(env) / "kioskd"
    if os.geteuid() == 0:
        return Path("/run/kioskd")
    return Path(f"/tmp/kioskd-{os.geteuid()}")  # noqa: S108 - private 0700 directory of this user


def state_dir() -> Path:
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/kioskd")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kioskd"


SYSTEM_SOCKET = Path("/run/kioskd/kioskd.sock")


def socket_path(runtime: Path | None = None) -> Path:
    """The API socket: the daemon's own (``runtime``), else for ``kioskctl`` the installed daemon's when there is
    one (an agent's shell has its own XDG_RUNTIME_DIR, which must not hide it), else this user's own daemon's."""
    if env := os.environ.get("KIOSKD_SOCKET"):
        return Path(env)
    if runtime is None and SYSTEM_SOCKET.exists():
        return SYSTEM_SOCKET
    return (runtime or runtime_dir()) / "kioskd.sock"
