"""kioskd's client of RAUC: reads an update bundle's signed manifest (``rauc info``), asks RAUC's service to install
it into the inactive slot (``rauc install``, over D-Bus: the service runs as root, kioskd does not) and reads which
slot booted. It never writes a partition or an ESP file itself, and it runs RAUC's command line on the event loop
as subprocesses (nothing blocks the loop)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kioskd.errors import UpdateRefused

PROGRESS = re.compile(r"^\s*(\d{1,3})% (.*)$")


@dataclass(frozen=True)
class Bundle:
    """What an update's signed manifest says (RAUC verified its signature before we read it)."""

    compatible: str
    version: str
    build: str  # the hash of the image's inputs (image-build/build.py)
    description: str

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Bundle:
        return cls(
            str(info.get("compatible") or ""),
            str(info.get("version") or ""),
            str(info.get("build") or ""),
            str(info.get("description") or ""),
        )


def refusal(text: str, where: str) -> UpdateRefused:
    """RAUC's error text as one of the catalogue's refusals (its text stays in ``what`` for the journal)."""
    lowered = text.lower()
    if "signature" in lowered or "cms" in lowered or "certificate" in lowered:
        key = "update.refused.signature"
    elif "compatible" in lowered:
        key = "update.refused.compatible"
    elif "no such file" in lowered or "failed to open" in lowered or "permission denied" in lowered:
        key = "update.refused.missing"
    elif "bundle" in lowered and ("invalid" in lowered or "format" in lowered or "size" in lowered):
        key = "update.refused.format"
    else:
        key = "update.failed"
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), text.strip())
    return UpdateRefused(last[:300] or "rauc failed", where=where, key=key)


@dataclass
class Rauc:
    """RAUC's command line and its service's D-Bus API (``busctl``); ``env`` lets tests name a private system bus."""

    binary: str = "rauc"
    busctl: str = "busctl"
    # RAUC hashes the whole bundle to check its signature: ~1 GB takes minutes on a slow PC (the virtual van under
    # TCG did not answer within busctl's default 25 s)
    check_timeout: float = 1200.0
    options: Sequence[str] = ()
    env: dict[str, str] | None = None
    cmdline: Path = Path("/proc/cmdline")

    async def _run(self, *args: str, line: Callable[[str], None] | None = None) -> tuple[int, str, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary, *self.options, *args, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
            )  # fmt: skip
        except FileNotFoundError:
            raise UpdateRefused(
                f"{self.binary} is not installed",
                where="update",
                key="update.unavailable",
                action="apt-get install rauc",
            ) from None
        assert process.stdout is not None and process.stderr is not None
        out: list[str] = []
        async for raw in process.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            out.append(text)
            if line is not None:
                line(text)
        err = (await process.stderr.read()).decode(errors="replace")
        return await process.wait(), "\n".join(out), err

    async def info(self, bundle: Path) -> Bundle:
        """The bundle's compatible and version once RAUC's service verified its signature (the service's ``Info``:
        RAUC reads a bundle only with a lease on it, which only root may take on a file it does not own). RAUC
        answers every refusal alike here; its journal says which check failed."""
        try:
            process = await asyncio.create_subprocess_exec(
                self.busctl, "--system", "--json=short", f"--timeout={self.check_timeout:.0f}", "call",
                "de.pengutronix.rauc", "/",
                "de.pengutronix.rauc.Installer", "Info", "s", str(bundle), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
            )  # fmt: skip
        except FileNotFoundError:
            raise UpdateRefused(
                f"{self.busctl} is not installed", where="update check", key="update.unavailable"
            ) from None
        out, err = await process.communicate()
        if process.returncode != 0:
            text = err.decode(errors="replace").strip()
            # RAUC gives one answer for a missing file and a bad one; kioskd's own view (its sandbox hides /tmp
            # and /home: bundles go on a USB stick or under /srv) tells them apart
            if not os.path.exists(bundle):  # noqa: ASYNC240 (a stat, no I/O to wait for)
                raise UpdateRefused(f"{bundle} not found", where="update check", key="update.refused.missing")
            if "rauc info error" in text:  # the service read it and refused it: signature, format or size
                raise UpdateRefused(f"RAUC refused the bundle ({text})", where="update check", key="update.refused")
            raise UpdateRefused(f"RAUC's service did not answer: {text}", where="update check", key="update.failed")
        try:
            compatible, version = json.loads(out)["data"]
        except (ValueError, KeyError, TypeError):
            raise UpdateRefused(f"RAUC answered {out[:100]!r}", where="update check", key="update.failed") from None
        return Bundle(str(compatible), str(version), "", "")

    async def install(self, bundle: Path, progress: Callable[[int, str], None] | None = None) -> None:
        """RAUC's service writes the inactive slot and makes it the one booted next (it checks the signature again
        first: nothing is written for a bundle that does not verify)."""
        messages: list[str] = []

        def line(text: str) -> None:
            messages.append(text)
            found = PROGRESS.match(text)
            if found and progress is not None:
                progress(min(int(found[1]), 100), found[2].strip())

        code, out, err = await self._run("install", str(bundle), line=line)
        if code != 0:
            last_error = next((m.split(":", 1)[1] for m in messages if m.startswith("LastError:")), "")
            raise refusal(last_error or err or out, "update install")

    async def status(self) -> dict[str, Any]:
        code, out, err = await self._run("status", "--output-format=json")
        if code != 0:
            raise refusal(err or out, "update status")
        status: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return status

    def booted_slot(self) -> str:
        """The slot this boot runs from (``rauc.slot=`` on the kernel's command line, as RAUC reads it)."""
        try:
            words = self.cmdline.read_text().split()
        except OSError:
            return ""
        return next((w.split("=", 1)[1] for w in words if w.startswith("rauc.slot=")), "")
