"""The update policy: the station is the update lock. An update bundle is checked at once (RAUC verifies its
signature: a refused one is reported and nothing is written), then installed into the inactive slot only while no
citizen is there (off, ready or travelling: the install waits for a session and its wipe to end, and no session
opens while RAUC writes); the switch is the next boot (the end of the day powers the van off). At start it tells
what the last install became: the new slot running, or abandoned by the boot loader after its failed tries and the
previous one back, with a notice for the agent and a message to the office.

It knows RAUC only through ``kioskd.update.rauc`` and writes one file of its own, the install's record on the data
partition (``update.json`` in the state dir); it never touches a partition, the ESP or a citizen's data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx

from kioskd.errors import TransitionRefused, UpdateRefused
from kioskd.hal import Clock, Event
from kioskd.policies.base import Guarded, Policy
from kioskd.update.download import Download, check_order, forget_bundles, on_root_device, stage
from kioskd.update.rauc import Rauc

if TYPE_CHECKING:
    from kioskd.records.store import Store
    from kioskd.station.snapshot import Level, Mode

log = logging.getLogger(__name__)

Phase = Literal["unavailable", "idle", "downloading", "waiting", "installing", "ready", "failed"]
Outcome = Literal["", "applied", "rolled_back", "interrupted"]
# where no citizen is: the install may run (starting may still finish a wipe left by a power cut; shutting_down
# comes after the end of the day's wipe, and the PC waits for the install before it powers off)
FREE_MODES = frozenset({"off", "ready", "travelling", "shutting_down"})
IMAGE_INFO = Path("/usr/lib/kioskd/image.json")
SYSTEM_CONF = Path("/etc/rauc/system.conf")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class UpdateState:
    """What the agent and the office see of updates (served as ``update`` in the status)."""

    available: bool = False  # RAUC and its system.conf are on this PC (the van's image), not on a laptop
    slot: str = ""  # the slot this boot runs from: a or b
    version: str = ""  # the running image's version (image.json)
    build: str = ""  # the hash of its inputs
    phase: Phase = "unavailable"
    target: str = ""  # the version being installed, or installed and waiting for the next boot
    progress: int = 0  # RAUC's percent, or the download's
    step: str = ""  # RAUC's step, as it says it (English)
    error: str = ""  # the catalogue key of the last refusal
    last: Outcome = ""  # what this boot made of the previous install
    last_version: str = ""


@dataclass(frozen=True)
class UpdateConfig:
    rauc: Rauc = field(default_factory=Rauc)
    record: Path = Path("/var/lib/kioskd/update.json")
    image_info: Path = IMAGE_INFO
    system_conf: Path = SYSTEM_CONF
    boot_id: Path = BOOT_ID
    # the office's bundles by URL land here, on the data partition (kioskd.update.download says why)
    downloads: Path = Path("/var/lib/kioskd/downloads")
    download_transport: httpx.AsyncBaseTransport | None = None  # tests may name one; the van uses its sockets
    retry_min: float = 2.0  # the download's first pause after a cut (doubling to 300 s)
    # whether RAUC reads a bundle file where it lies (else it is copied onto the data partition first)
    root_device: Callable[[Path], bool] = on_root_device


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _other(slot: str) -> str:
    return {"a": "b", "b": "a"}.get(slot, "")


class UpdatePolicy(Policy):
    events: ClassVar[tuple[type[Event], ...]] = (Event,)  # every change of the station may free it

    def __init__(self, config: UpdateConfig, clock: Clock, store: Store | None = None) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.state = UpdateState()
        self._free = asyncio.Event()
        self._boot = ""
        self._task: asyncio.Task[None] | None = None  # the install: waits for no citizen, then RAUC writes
        self._fetching: asyncio.Task[None] | None = None  # the office's download, before its install

    # ------------------------------------------------------------------------------------------- start
    def start(self) -> None:
        config = self.config
        image = _read_json(config.image_info)
        try:
            self._boot = config.boot_id.read_text().strip()
        except OSError:
            self._boot = ""
        slot = config.rauc.booted_slot()
        available = config.system_conf.exists() and bool(slot)
        self.state = UpdateState(
            available=available,
            slot=slot,
            version=str(image.get("version", "")),
            build=str(image.get("inputs", ""))[:12],
            phase="idle" if available else "unavailable",
        )
        record = _read_json(config.record)
        if available and record:
            self._after_boot(record)
        self._show()
        self._check_free()
        if not self._order.exists():  # no download to resume: a bundle left here is a cut install's copy
            for name in forget_bundles(config.downloads):
                log.info("update: %s left on the data partition by an install that did not end, removed", name)
        if available and self.state.phase == "idle":
            self._resume_order()

    def _after_boot(self, record: dict[str, Any]) -> None:
        """What became of the install ``record`` describes: still waiting for a boot, running, or rolled back."""
        version = str(record.get("version", ""))
        if record.get("writing") and record.get("boot") == self._boot:
            # kioskd restarted while RAUC's service writes the slot: the service finishes or abandons it alone
            log.warning("update %s was being written when kioskd restarted: RAUC's service carries on", version)
            return
        if record.get("writing") and self.state.slot != record.get("slot"):
            # the PC lost power while the slot was written: RAUC had marked it bad first, so the old slot booted
            self._back_on_old_slot("interrupted", version, "warning", "was cut while it was written")
            return
        if record.get("boot") == self._boot:  # installed during this boot (kioskd restarted since)
            self.state = replace(self.state, phase="ready", target=version)
            self.outlet.notice("update", "update.ready", "info", version=version)
            return
        if self.state.slot == record.get("slot"):
            self.state = replace(self.state, last="applied", last_version=version)
            if record.get("applied") in (None, self._boot):  # said on the first boot of the new slot only
                self.outlet.notice("update", "update.applied", "info", version=version)
            if record.get("applied") is None:
                self._write_record({**record, "applied": self._boot})
                self._tell_office("applied", version)
            return
        # the boot loader gave up on the new slot after its tries: the previous version runs again
        self._back_on_old_slot("rolled_back", version, "error", "abandoned by the boot loader")

    def _back_on_old_slot(self, outcome: Outcome, version: str, level: Level, why: str) -> None:
        """The previous version runs (``outcome``: the new slot rolled back, or its write interrupted): the agent's
        notice, the journal, the office's message; the record goes."""
        self.state = replace(self.state, last=outcome, last_version=version)
        self.outlet.notice("update", f"update.{outcome}", level, version=version, running=self.state.version)
        log.log(logging.ERROR if level == "error" else logging.WARNING, "update %s %s: back on slot %s (%s)",
                version, why, self.state.slot, self.state.version)  # fmt: skip
        self._tell_office(outcome, version)
        with contextlib.suppress(OSError):
            self.config.record.unlink()

    def _tell_office(self, event: str, version: str, **more: str) -> None:
        store = self.store
        if store is None or not store.queue_for_fleet:
            return
        body = {"event": event, "version": version, "running": self.state.version, "slot": self.state.slot, **more}
        self.outlet.spawn(store.enqueue("update", body, self.clock.wall()))

    # ------------------------------------------------------------------------------------------- the lock
    def on_event(self, event: Event) -> None:
        self._check_free()

    def _check_free(self) -> None:
        if self.outlet.state.mode in FREE_MODES:
            self._free.set()
        else:
            self._free.clear()

    async def moving(self, target: Mode) -> None:
        """The end of the day waits for an install under way (or waiting for it): the slot is written before the PC
        powers off, and the next power on boots it. A shutdown kioskd did not ask for (logind's, a stop) or a low
        battery's does not wait: RAUC marked the slot bad before writing it, so a cut install leaves the old slot
        booting."""
        task = self._task
        writing = self.state.phase in ("waiting", "installing")  # a download stops here and resumes at next start
        if target == "off" and self.outlet.state.reason == "end_of_day" and writing and task is not None \
                and not task.done():  # fmt: skip
            log.info("end of day: the update is written before the PC powers off")
            await asyncio.shield(task)

    def veto(self, action: Guarded) -> TransitionRefused | None:
        if action == "session" and self.state.phase == "installing":
            return UpdateRefused("an update is being written", where="update", key="refused.update.installing")
        return None

    # ------------------------------------------------------------------------------------------- install
    async def install(self, source: str, sha256: str = "") -> UpdateState:
        """Check ``source`` (a bundle file) now, then install it in the background once no citizen is there; the
        state says which phase it reached. A refused bundle raises ``UpdateRefused`` and nothing is written.
        A URL (the office's order, or ``kioskctl update install URL --sha256 …``) needs its ``sha256``: the bundle
        is downloaded first (resumed after a cut), then checked and installed the same way."""
        if not self.state.available:
            raise UpdateRefused("this PC has no A/B update slots (RAUC)", where="update", key="update.unavailable")
        if self.state.phase in ("downloading", "waiting", "installing"):
            raise UpdateRefused("an update is already under way", where="update", key="update.busy")
        if source.startswith(("http://", "https://")):
            return self._download(source, check_order(source, sha256))
        # a stick's file is copied onto the data partition first (RAUC reads no bundle on a device kioskd owns)
        path = await stage(Path(source), self.config.downloads, self.config.root_device)
        return await self._check_and_queue(path, copied=path != Path(source))

    async def order(self, url: str, sha256: str) -> dict[str, Any]:
        """The office's order over the fleet link (``kioskd.fleet.link``): a URL and its sha256."""
        return asdict(await self.install(url, sha256))

    def _download(self, url: str, sha256: str) -> UpdateState:
        config = self.config
        download = Download(url, sha256, config.downloads, self.clock, retry_min=config.retry_min,
                            transport=config.download_transport)  # fmt: skip
        self.state = replace(self.state, phase="downloading", target="", progress=0, step="", error="")
        self._show()
        self.outlet.clear_notice("update")
        self.outlet.notice("update", "update.downloading", "info", host=download.host)
        self._write_order({"url": url, "sha256": sha256})
        self._fetching = asyncio.get_running_loop().create_task(self._after_download(download))
        return self.state

    @property
    def _order(self) -> Path:
        return self.config.downloads / "order.json"

    def _write_order(self, order: dict[str, str]) -> None:
        """The office's order outlives a power off: the next start resumes its download from the .part file."""
        try:
            self.config.downloads.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._order.write_text(json.dumps(order))
        except OSError as exc:
            log.warning("could not keep the update order: %s", exc)

    def _resume_order(self) -> None:
        order = _read_json(self._order)
        url, sha256 = str(order.get("url", "")), str(order.get("sha256", ""))
        if not url:
            return
        try:
            self._download(url, check_order(url, sha256))
        except UpdateRefused:
            with contextlib.suppress(OSError):
                self._order.unlink()

    async def _after_download(self, download: Download) -> None:
        def progress(received: int, total: int) -> None:
            percent = received * 100 // total if total else 0
            if percent != self.state.progress:
                self.state = replace(self.state, progress=percent)
                self._show()

        path: Path | None = None
        try:
            path = await download.fetch(progress)
            with contextlib.suppress(OSError):
                self._order.unlink()  # whole and matching its hash: from now on it is an install like a file's
            await self._check_and_queue(path)
        except UpdateRefused as exc:
            log.warning("update from %s refused: %s", download.host, exc)
            with contextlib.suppress(OSError):
                self._order.unlink()
            self._refused(exc)
            if path is not None:  # a bundle RAUC refused has no business on the data partition
                with contextlib.suppress(OSError):
                    path.unlink()
            return
        task = self._task
        if task is not None:
            await asyncio.shield(task)  # the install _check_and_queue started: waits for no citizen, then writes
        with contextlib.suppress(OSError):
            path.unlink()  # written (or failed): the slot holds it now, the data partition wants its room back

    def _refused(self, exc: UpdateRefused) -> None:
        self.state = replace(self.state, phase="failed", error=exc.key, progress=0)
        self._show()
        self.outlet.notice("update", exc.key, "warning", detail=exc.what)
        self._tell_office("refused", self.state.target, key=exc.key)

    async def _check_and_queue(self, path: Path, copied: bool = False) -> UpdateState:
        """RAUC's check of ``path``, then the install queued; ``copied``: ``path`` is kioskd's copy, removed once
        refused or written (a download's file is removed by ``_after_download``)."""
        try:
            bundle = await self.config.rauc.info(path)  # RAUC's service verifies the signature: a bad one stops here
            system = await self.config.rauc.status()
            if bundle.compatible != system.get("compatible"):
                raise UpdateRefused(
                    f"bundle for {bundle.compatible!r}, this system is {system.get('compatible')!r}",
                    where="update check",
                    key="update.refused.compatible",
                )
        except UpdateRefused:
            if copied:
                _remove(path)
            raise
        self.state = replace(self.state, phase="waiting", target=bundle.version, progress=0,
                             step="", error="")  # fmt: skip
        self._show()
        self.outlet.clear_notice("update")
        # its own task, not the station's: an install waiting for the end of the day is not work the station's
        # idle() should wait for; close() cancels it (RAUC's service finishes or abandons the slot by itself)
        self._task = asyncio.get_running_loop().create_task(self._install(path, copied))
        return self.state

    def close(self) -> None:
        for task in (self._fetching, self._task):
            if task is not None and not task.done():
                task.cancel()

    async def _install(self, path: Path, copied: bool = False) -> None:
        try:
            await self._write(path)
        finally:
            if copied:  # written or refused: the data partition wants its room back
                _remove(path)

    async def _write(self, path: Path) -> None:
        if not self._free.is_set():
            self.outlet.notice("update", "update.waiting", "info", version=self.state.target)
        await self._free.wait()
        self.state = replace(self.state, phase="installing")
        self._show()
        self.outlet.notice("update", "update.installing", "info", version=self.state.target)
        started = self.clock.monotonic()
        record = {"version": self.state.target, "slot": _other(self.state.slot), "from": self.state.slot,
                  "from_version": self.state.version, "boot": self._boot, "at": self.clock.wall()}  # fmt: skip
        self._write_record({**record, "writing": True})  # a power cut from here on is told at the next start
        try:
            await self.config.rauc.install(path, self._progress)
            if not self.state.target:
                self.state = replace(self.state, target=await self._installed_version())
        except UpdateRefused as exc:
            log.warning("update refused: %s", exc)
            with contextlib.suppress(OSError):
                self.config.record.unlink()
            self._refused(exc)
            return
        seconds = self.clock.monotonic() - started
        log.info("update %s written to slot %s in %.0f s", self.state.target, _other(self.state.slot), seconds)
        self._write_record({**record, "version": self.state.target, "seconds": round(seconds, 1)})
        self.state = replace(self.state, phase="ready", progress=100)
        self._show()
        self.outlet.notice("update", "update.ready", "info", version=self.state.target)
        self._tell_office("ready", self.state.target)

    async def _installed_version(self) -> str:
        with contextlib.suppress(UpdateRefused, ValueError, KeyError):
            status = await self.config.rauc.status()
            for slot in status.get("slots", []):
                for info in slot.values():
                    if info.get("bootname") == _other(self.state.slot):
                        return str(info.get("slot_status", {}).get("bundle", {}).get("version", ""))
        return ""

    def _progress(self, percent: int, step: str) -> None:
        self.state = replace(self.state, progress=percent, step=step[:80])
        self._show()

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self.config.record
        part = path.with_name(path.name + ".new")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            part.rename(path)
        except OSError as exc:  # a full data disk: the update still happens, its outcome is not told later
            log.warning("could not write the update record %s: %s", path, exc)

    def _show(self) -> None:
        self.outlet.show(update=self.state)

    def to_json(self) -> dict[str, Any]:
        return asdict(self.state)
