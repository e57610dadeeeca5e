"""The wipe journal: one fsync'd JSON entry per session in the state directory, written before the session's
first file and before the wipe's first handler, removed only once the wipe is verified. Whatever it lists at
start-up is a wipe still to do. It holds session ids, times, the stop and the wipe's phase: no citizen data.

Every write may fail (a full state disk): it raises ``OSError`` and leaves nothing half-made behind it, and the
files are 0600 whatever the umask. The wipe goes on without its journal (``Sessions.wipe``): the entry written when
the session opened still marks it pending, and a session never opens without one."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.json"

    def write(self, session_id: str, entry: dict[str, object]) -> None:
        """Replace the session's entry atomically (temporary file, fsync, rename, fsync of the directory)."""
        path = self._path(session_id)
        tmp = path.with_suffix(".tmp")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # deleted under a running daemon
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            # a temporary file left would list the session as pending forever (a wipe of nothing at each start)
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.directory)

    def read(self, session_id: str) -> dict[str, object]:
        """The session's entry, or {} when there is none or it cannot be read (a stray workspace)."""
        try:
            data = json.loads(self._path(session_id).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def clear(self, session_id: str) -> None:
        path = self._path(session_id)
        path.unlink(missing_ok=True)
        path.with_suffix(".tmp").unlink(missing_ok=True)
        fsync_dir(self.directory)

    def sessions(self) -> set[str]:
        """Every session with an entry, a half-written one (power cut during the write) included."""
        if not self.directory.is_dir():
            return set()
        return {p.stem for p in self.directory.glob("*.json")} | {p.stem for p in self.directory.glob("*.tmp")}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
