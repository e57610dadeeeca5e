"""Simulated USB sticks: real file-system images (made by mkfs.vfat, mkfs.exfat, mkntfs) handed to the real FUSE
backend (``media.fuse``, built as a part without udev), so the same mount, export and eject code runs. Its verbs:
plug, pull. It imports only ``kioskd.hal``; the stick images live under the runtime directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from drivers.sim.van import SimView
from kioskd.hal import DriverContext, DriverKind, ExportResult, MediaOptions, MediaState, Stick, Tally

MKFS = {
    "vfat": ["mkfs.vfat", "-n", "{label}"],
    "exfat": ["mkfs.exfat", "-L", "{label}"],
    "ntfs": ["mkntfs", "-F", "-f", "-q", "-L", "{label}"],
}


class SimMedia(SimView):
    kind: ClassVar[DriverKind] = "media"
    options_model: ClassVar[type[MediaOptions]] = MediaOptions

    def __init__(self, ctx: DriverContext) -> None:
        options = ctx.parse_options(self.options_model)
        super().__init__(ctx)
        self.part: Any = ctx.build_part(
            "media", "fuse", {**options.model_dump(), "udev": False}, ctx.emit, "media (the simulated sticks)"
        )
        self.images = ctx.runtime_dir / "sim-media"
        self._plugged = 0

    # the contract, through the real backend
    @property
    def state(self) -> MediaState:
        state: MediaState = self.part.state
        return state

    async def start(self) -> None:
        await self.part.start()
        self.started = True

    async def close(self) -> None:
        self.started = False
        await self.part.close()

    async def mount(self, stick_id: str, target: Path, session_id: str, group: int | None) -> Stick:
        stick: Stick = await self.part.mount(stick_id, target, session_id, group)
        self.record("mount", stick_id)
        return stick

    async def export(
        self, stick_id: str, files: Sequence[Path], progress: Callable[[int], None] | None = None
    ) -> ExportResult:
        result: ExportResult = await self.part.export(stick_id, files, progress)
        self.record("export", result.files)
        return result

    async def eject(self, stick_id: str) -> None:
        await self.part.eject(stick_id)
        self.record("eject", stick_id)

    async def release(self, session_id: str) -> list[str]:
        notes: list[str] = await self.part.release(session_id)
        return notes

    def holders(self, session_id: str) -> int:
        return int(self.part.holders(session_id))

    def tally(self, session_id: str) -> Tally:
        tally: Tally = self.part.tally(session_id)
        return tally

    # the verbs
    async def verb_plug(self, args: list[str]) -> str:
        """plug vfat|exfat|ntfs [LABEL] [locked] | plug /path/to/image [locked]: a USB stick comes in"""
        if not args:
            raise ValueError("plug: expected vfat, exfat, ntfs or an image's path")
        locked = "locked" in args[1:]
        rest = [a for a in args[1:] if a != "locked"]
        self._plugged += 1
        stick_id = f"sim-{self._plugged}"
        if args[0] in MKFS:
            label = (rest[0] if rest else "CITOYEN")[:11]
            image = self.images / f"{stick_id}.img"
            await asyncio.to_thread(_make_image, image, args[0], label)
        else:
            image = Path(args[0])
            if not image.is_absolute() or not image.is_file():
                raise ValueError("plug: an image must be an absolute path to a file")
        if locked:
            os.chmod(image, 0o444)
        stick = self.part.arrive(stick_id, image)
        self.record("plug", stick_id)
        return f"stick {stick.id} plugged in ({stick.filesystem})"

    async def verb_pull(self, args: list[str]) -> str:
        """pull [ID]: the stick is pulled out (without eject), its driver loses the device"""
        sticks = self.part.state.sticks
        if not sticks:
            raise ValueError("pull: no stick plugged in")
        stick_id = args[0] if args else sticks[-1].id
        await asyncio.to_thread(self.part.depart, stick_id)
        self.record("pull", stick_id)
        return f"stick {stick_id} pulled out"


def _make_image(image: Path, fs: str, label: str, size: int = 64 << 20) -> None:
    image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size)
    command = [part.format(label=label) for part in MKFS[fs]]
    subprocess.run([*command, str(image)], stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60)
