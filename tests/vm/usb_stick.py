"""The citizen's USB stick of the virtual van: a FAT image made on the host (mkfs.vfat, then mtools) with canary
files, hot-plugged into the running guest as a real USB mass-storage device over QMP (``blockdev-add`` then
``device_add usb-storage``) and pulled out with ``device_del``, then read back on the host with mtools.

It mounts nothing on the host (this machine's kernel has no vfat driver) and reaches the guest only through QMP."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.integration.require import binary
from tests.vm.virtual_van import VanError, VirtualVan

LABEL = "CITOYEN"
# what the citizen brings: names a careless program would log or trip on, bytes a text conversion would change
CANARIES = {
    "Mes papiers.pdf": b"%PDF-1.4\n% canary of the citizen's own file\n\x00\xff\r\n",
    "photo-identite.jpg": b"\xff\xd8\xff\xe0canary photo\x00" * 64,
    "impots/avis 2026.txt": b"canary: avis d'imposition\r\nligne 2\n",
}
NODE, DEVICE = "citizen-stick", "citizen-stick-usb"
MTOOLS_HINT = "mtools dosfstools"


def _mtools(*argv: str, check: bool = True) -> bytes:
    binary(argv[0], MTOOLS_HINT)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def make_stick(image: Path, size_mb: int = 64) -> None:
    """A FAT32 stick image holding ``CANARIES`` (64 MB: below ~65,525 clusters mtools reads FAT32 as FAT16)."""
    binary("mkfs.vfat", MTOOLS_HINT)
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", LABEL, str(image)], check=True, capture_output=True, timeout=60)
    folders = sorted({str(Path(name).parent) for name in CANARIES if "/" in name})
    for folder in folders:
        _mtools("mmd", "-i", str(image), f"::{folder}")
    for name, data in CANARIES.items():
        source = image.with_name("canary.tmp")
        source.write_bytes(data)
        _mtools("mcopy", "-i", str(image), str(source), f"::{name}")
        source.unlink()


def read_stick(image: Path) -> dict[str, bytes]:
    """Every file on the stick image (path → bytes), through mdir and mtype."""
    listing = _mtools("mdir", "-i", str(image), "-/", "-b", "::").decode("utf-8", "replace")
    files = [line.removeprefix("::/") for line in listing.splitlines() if line.startswith("::/")]
    return {name: _mtools("mtype", "-i", str(image), f"::/{name}") for name in files if not name.endswith("/")}


def plug(van: VirtualVan, image: Path) -> None:
    """The stick into the van's USB port (qemu's xHCI bus, where the button and the battery cable are)."""
    assert van.qmp is not None
    van.qmp.command(
        "blockdev-add", driver="raw", **{"node-name": NODE}, file={"driver": "file", "filename": str(image)}
    )
    van.qmp.command("device_add", driver="usb-storage", id=DEVICE, drive=NODE, bus="usb.0", removable=True)


def pull(van: VirtualVan, timeout: float = 60.0) -> None:
    """The stick out of the port; its image is the host's again once qemu has let it go."""
    assert van.qmp is not None
    qmp = van.qmp
    qmp.command("device_del", id=DEVICE)
    deadline = time.monotonic() + timeout
    while not any(e.get("event") == "DEVICE_DELETED" and e.get("data", {}).get("device") == DEVICE for e in qmp.events):
        if time.monotonic() > deadline:
            raise VanError(f"qemu did not delete the stick within {timeout:.0f} s")
        time.sleep(0.5)
        qmp.command("query-status")  # events arrive with answers
    qmp.command("blockdev-del", **{"node-name": NODE})
