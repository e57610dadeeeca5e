"""RAUC's ``custom`` boot loader backend for systemd-boot: the A/B choice is the order of systemd-boot's entries and
its boot counting (``+N`` tries in the entry's file name), so a slot that never reaches ``boot-complete.target``
is abandoned by the loader itself and the other slot boots, with no code of ours running.

RAUC runs ``python -m kioskd.update.bootloader get-primary | set-primary S | get-state S | set-state S good|bad``
as root. Entries are ``loader/entries/kioskd-<generation>-<slot>[+left[-done]].conf`` on the ESP: systemd-boot
(252) sorts entries with no tries left last, then by id descending, and boots the first when loader.conf names no
default, so the highest generation that still has tries is the one booted. This room writes only entry files and
never the kernels (the bundle's hook copies those); it must not name a ``default`` in loader.conf (a pattern
would keep a bad entry chosen)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ENTRY = re.compile(r"^kioskd-(?P<gen>\d+)-(?P<slot>[a-z0-9]+)(?:\+(?P<left>\d+)(?:-(?P<done>\d+))?)?\.conf$")
DEFAULT_ESP = Path("/efi")
DEFAULT_TRIES = 3  # "a few times": three boots that do not reach boot-complete.target abandon the slot


class BackendError(Exception):
    """The ESP is not as this backend expects; the message says what is wrong."""


@dataclass(frozen=True)
class Entry:
    path: Path
    generation: int
    slot: str
    left: int | None  # tries left; None: no boot counting (a blessed entry)
    done: int | None

    @property
    def bad(self) -> bool:
        return self.left == 0

    @property
    def counting(self) -> bool:
        return self.left is not None and self.left > 0


def entries(esp: Path) -> list[Entry]:
    """The kioskd entries on the ESP, in systemd-boot's order: bad ones last, then the newest generation first."""
    folder = esp / "loader" / "entries"
    found: list[Entry] = []
    for path in folder.glob("kioskd-*.conf") if folder.is_dir() else ():
        match = ENTRY.match(path.name)
        if match is None:
            continue
        left, done = match["left"], match["done"]
        found.append(Entry(path, int(match["gen"]), match["slot"], None if left is None else int(left), int(done or 0)))
    return sorted(found, key=lambda e: (e.bad, -e.generation, e.slot))


def primary(esp: Path) -> str | None:
    """The slot systemd-boot will boot next (the first entry that still has tries), None when there is none."""
    for entry in entries(esp):
        if not entry.bad:
            return entry.slot
    return None


def state(esp: Path, slot: str) -> str:
    """``good`` while the slot has an entry that can still boot, else ``bad`` (never installed, being written, or
    out of tries)."""
    return "good" if any(e.slot == slot and not e.bad for e in entries(esp)) else "bad"


def _write(path: Path, text: str) -> None:
    """A new file whole or not at all (a power cut on a FAT file system must not leave half an entry)."""
    part = path.with_name(path.name + ".new")
    with part.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    part.rename(path)


def _options(esp: Path, slot: str) -> str:
    """The kernel command line for ``slot``, from an existing entry's (root and rauc.slot changed to the slot)."""
    for entry in entries(esp):
        for line in entry.path.read_text().splitlines():
            if line.startswith("options "):
                words = [w for w in line.split()[1:] if not w.startswith(("root=", "rauc.slot="))]
                return " ".join([f"root=PARTLABEL=root-{slot}", f"rauc.slot={slot}", *words])
    raise BackendError(f"no kioskd entry on {esp}/loader/entries to take the kernel command line from")


def set_primary(esp: Path, slot: str, tries: int = DEFAULT_TRIES) -> Path:
    """``slot`` boots next, ``tries`` times at most before systemd-boot gives up on it: a new entry of the next
    generation with a boot counter (the slot's older entries go)."""
    if not (esp / f"vmlinuz-{slot}").exists():
        raise BackendError(f"no kernel vmlinuz-{slot} on {esp}: the bundle's hook did not copy it")
    options = _options(esp, slot)
    known = entries(esp)
    generation = max((e.generation for e in known), default=0) + 1
    target = esp / "loader" / "entries" / f"kioskd-{generation:04d}-{slot}+{max(tries, 1)}.conf"
    _write(
        target,
        f"title kioskd (root {slot.upper()}, generation {generation})\nlinux /vmlinuz-{slot}\n"
        f"initrd /initrd-{slot}\noptions {options}\n",
    )
    for entry in known:
        if entry.slot == slot:
            entry.path.unlink()
    return target


def set_state(esp: Path, slot: str, good: bool) -> None:
    """good: the slot's entries lose their counter (what systemd-bless-boot does after boot-complete.target);
    bad: they go (RAUC marks the slot it is about to write bad: a power cut then boots the other one)."""
    for entry in entries(esp):
        if entry.slot != slot:
            continue
        if not good:
            entry.path.unlink()
        elif entry.left is not None:
            entry.path.rename(entry.path.with_name(f"kioskd-{entry.generation:04d}-{slot}.conf"))
    if good and state(esp, slot) != "good":
        raise BackendError(f"slot {slot} has no entry that can boot: it cannot be marked good")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    esp = Path(os.environ.get("KIOSKD_ESP", str(DEFAULT_ESP)))
    tries = DEFAULT_TRIES
    with contextlib.suppress(ValueError):
        tries = int(os.environ.get("KIOSKD_BOOT_TRIES", DEFAULT_TRIES))
    try:
        match args:
            case ["get-primary"]:
                found = primary(esp)
                if found is None:
                    raise BackendError(f"no bootable kioskd entry on {esp}")
                print(found)
            case ["set-primary", slot]:
                set_primary(esp, slot, tries)
            case ["get-state", slot]:
                print(state(esp, slot))
            case ["set-state", slot, ("good" | "bad") as verdict]:
                set_state(esp, slot, verdict == "good")
            case _:
                print(f"usage: {Path(sys.argv[0]).name} get-primary | set-primary SLOT | get-state SLOT | "
                      "set-state SLOT good|bad", file=sys.stderr)  # fmt: skip
                return 2
    except (BackendError, OSError) as exc:
        print(f"kioskd boot loader backend: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
