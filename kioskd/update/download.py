"""The download of an update bundle the office names by URL and sha256: over the van's uplink (whichever route the
connectivity policy left in front), into the data partition's download folder, resumed with an HTTP ``Range`` after
a cut (a ``.part`` file named by the hash survives a restart too), then checked against the hash. It never judges
a bundle's signature (RAUC does, after) and never writes outside its folder.

Why a file on the data partition: Debian 12's rauc 1.8 is built without streaming (``configured without
--enable-streaming``), and its older download mode fetches the whole bundle into a temporary file with no resume
and no hash of ours; the data partition has room for one bundle (image-build/build.py sizes it so).

A bundle given as a file comes here too when RAUC would not read it where it is (``stage``): RAUC 1.8 refuses a
plain bundle whose file system's device is not root's ("unsafe uid … for mounted device"), and a USB stick's node
on the van is kioskd's (its media room's udev rule)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from kioskd.errors import UpdateRefused
from kioskd.hal import Clock

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
CHUNK = 1 << 20
# what the data partition keeps free beside a bundle: the store, receipts and figures go on writing meanwhile
RESERVE = 64 << 20


def check_order(url: str, sha256: str) -> str:
    """The office's order made safe to act on: an http(s) URL with a host, a sha256 in hex (returned lowercase)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpdateRefused("an update URL is http:// or https:// with a host", where="update download",
                            key="update.refused.url")  # fmt: skip
    digest = sha256.strip().lower()
    if not SHA256.match(digest):
        raise UpdateRefused("an update URL needs its sha256 (64 hex digits)", where="update download",
                            key="update.refused.hash_missing")  # fmt: skip
    return digest


@dataclass
class Download:
    """One bundle to fetch: ``url`` and its ``sha256``, into ``folder`` (``<sha256>.part`` while it comes, then
    ``<sha256>.raucb``). Cuts are retried after ``retry_min`` doubling to ``retry_max`` seconds (the injected
    clock's), ``tries`` times in a row without a byte gained; a byte gained starts the count again."""

    url: str
    sha256: str
    folder: Path
    clock: Clock
    retry_min: float = 2.0
    retry_max: float = 300.0
    tries: int = 12
    timeout: float = 60.0  # seconds without a byte: a link that went quiet counts as a cut
    transport: httpx.AsyncBaseTransport | None = None  # tests may name one; the van uses the uplink's sockets
    received: int = 0  # bytes in the .part file
    total: int = 0  # the bundle's size once the server said it
    resumed: int = 0  # how many times a request continued a .part file

    def __post_init__(self) -> None:
        self._digest = hashlib.sha256()  # of the .part file's bytes, as they come

    @property
    def part(self) -> Path:
        return self.folder / f"{self.sha256}.part"

    @property
    def bundle(self) -> Path:
        return self.folder / f"{self.sha256}.raucb"

    @property
    def host(self) -> str:
        """What the journal may say of the URL (its host only: the path may carry the office's token)."""
        return urlsplit(self.url).hostname or "?"

    async def fetch(self, progress: Callable[[int, int], None] | None = None) -> Path:
        """The bundle, whole and matching its sha256; ``UpdateRefused`` when the server refuses it, the hash does
        not match (the file is removed), the disk has no room, or the link stayed down ``tries`` times."""
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._forget_others()
        if self.bundle.exists():
            try:  # RAUC takes a bundle it checked (root's, 0640): then kioskd cannot read it again
                whole = await asyncio.to_thread(_file_sha256, self.bundle) == self.sha256
            except OSError:
                whole = False
            if whole:
                return self.bundle
            self.bundle.unlink()
        self._digest = hashlib.sha256()
        if self.part.exists():
            # the hash of what came before the cut (read on a worker thread: ~1 GB would stall the loop)
            self._digest, self.received = await asyncio.to_thread(_part_state, self.part)
        failures = 0
        delay = self.retry_min
        async with httpx.AsyncClient(
            transport=self.transport, timeout=httpx.Timeout(30.0, read=self.timeout), follow_redirects=True
        ) as client:
            while True:
                before = self.received
                try:
                    await self._request(client, progress)
                    break
                except (httpx.TransportError, _Cut) as exc:
                    failures = 0 if self.received > before else failures + 1
                    log.info("update download from %s cut at %d bytes (%s): retry %d/%d in %.0f s", self.host,
                             self.received, type(exc).__name__, failures, self.tries, delay)  # fmt: skip
                    if failures >= self.tries:
                        raise UpdateRefused(
                            f"the download stopped {failures} times in a row at {self.received} bytes",
                            where="update download", key="update.refused.download",
                        ) from None  # fmt: skip
                    await self.clock.sleep(delay)
                    delay = self.retry_min if self.received > before else min(delay * 2, self.retry_max)
        found = self._digest.hexdigest()
        if found != self.sha256:
            self.part.unlink(missing_ok=True)
            raise UpdateRefused(f"the download's sha256 is {found}, the order said {self.sha256}",
                                where="update download", key="update.refused.hash")  # fmt: skip
        self.part.rename(self.bundle)
        log.info("update downloaded from %s: %d bytes, resumed %d times", self.host, self.received, self.resumed)
        return self.bundle

    async def _request(self, client: httpx.AsyncClient, progress: Callable[[int, int], None] | None) -> None:
        headers = {"Range": f"bytes={self.received}-"} if self.received else {}
        async with client.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 416 and self.received:  # nothing after what we hold: it is whole (or wrong)
                return
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise _Cut(f"HTTP {response.status_code}")
            if response.status_code == 206:
                found = CONTENT_RANGE.match(response.headers.get("content-range", ""))
                if found is None or int(found[1]) != self.received:
                    raise UpdateRefused("the server answered another range than asked", where="update download",
                                        key="update.refused.download")  # fmt: skip
                self.total = int(found[3]) if found[3] != "*" else 0
                self.resumed += 1
                mode = "ab"
            elif response.status_code == 200:  # no ranges (or a new file): from the start again
                self._digest, self.received = hashlib.sha256(), 0
                self.total = int(response.headers.get("content-length") or 0)
                mode = "wb"
            else:
                raise UpdateRefused(f"the server answered HTTP {response.status_code}", where="update download",
                                    key="update.refused.download")  # fmt: skip
            self._room_for(self.total - self.received if self.total else 0)
            with self.part.open(mode) as f:
                async for chunk in response.aiter_bytes():  # as they come: a cut loses none of them
                    f.write(chunk)
                    self._digest.update(chunk)
                    self.received += len(chunk)
                    if progress is not None:
                        progress(self.received, self.total)
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
            if self.total and self.received < self.total:
                raise _Cut(f"{self.received} of {self.total} bytes")

    def _room_for(self, remaining: int) -> None:
        free = shutil.disk_usage(self.folder).free
        if remaining + RESERVE > free:
            raise UpdateRefused(f"{remaining} bytes to download, {free} free on the data partition",
                                where="update download", key="update.refused.space")  # fmt: skip

    def _forget_others(self) -> None:
        """Older downloads (another hash) go: the data partition holds one bundle."""
        forget_bundles(self.folder, keep=self.sha256)


def forget_bundles(folder: Path, keep: str = "") -> list[str]:
    """Remove the bundles and partial files in ``folder`` but ``keep``'s (a hash, or ``file`` for a stick's copy);
    the names removed. A missing folder has none."""
    removed: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for path in folder.iterdir():
            if path.suffix in (".part", ".raucb") and path.stem != keep:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
    return removed


def on_root_device(path: Path) -> bool:
    """Whether ``path`` lies on a file system whose block device node is root's (RAUC reads a plain bundle only
    there): False for a USB stick's node (kioskd's on the van), a FUSE or tmpfs mount (no node), or no answer."""
    try:
        device = os.stat(path).st_dev
        number = f"{os.major(device)}:{os.minor(device)}"
        if os.path.exists(f"/dev/block/{number}"):  # udev's link to the node
            return os.stat(f"/dev/block/{number}").st_uid == 0
        uevent = Path(f"/sys/dev/block/{number}/uevent").read_text()  # no udev (a container): the kernel's name
        name = next(line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DEVNAME="))
        return os.stat(f"/dev/{name}").st_uid == 0
    except (OSError, StopIteration):
        return False


async def stage(source: Path, folder: Path, root_device: Callable[[Path], bool] = on_root_device) -> Path:
    """``source`` where RAUC will read it: itself when it lies on a root device, else a copy in ``folder`` (the
    data partition's download folder, ``file.raucb``; older downloads go). ``UpdateRefused`` when it cannot be
    read or the data partition has no room for it (the copy is removed). The copy runs on a worker thread."""
    return await asyncio.to_thread(_stage, source, folder, root_device)


def _stage(source: Path, folder: Path, root_device: Callable[[Path], bool]) -> Path:
    try:
        total = source.stat().st_size
    except OSError:  # RAUC's check says it is missing (kioskd.update.rauc tells that refusal apart)
        return source
    if root_device(source):
        return source
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    forget_bundles(folder)  # the data partition holds one bundle
    free = shutil.disk_usage(folder).free
    if total + RESERVE > free:
        raise UpdateRefused(f"{total} bytes to copy, {free} free on the data partition", where="update check",
                            key="update.refused.space")  # fmt: skip
    part, bundle = folder / "file.part", folder / "file.raucb"
    try:
        with source.open("rb") as f, part.open("wb") as out:
            shutil.copyfileobj(f, out, CHUNK * 4)
            out.flush()
            os.fsync(out.fileno())
        part.rename(bundle)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UpdateRefused(f"could not copy the bundle onto the data partition: {exc.strerror}",
                            where="update check", key="update.refused.missing") from None  # fmt: skip
    log.info("update bundle copied onto the data partition (%d bytes): RAUC reads it there", total)
    return bundle


class _Cut(Exception):
    """The body ended before its length, or the server said try later: resume."""


def _file_sha256(path: Path) -> str:
    return _part_state(path)[0].hexdigest()


def _part_state(path: Path) -> tuple[hashlib._Hash, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest, size
