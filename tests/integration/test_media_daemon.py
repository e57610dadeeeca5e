"""The citizen's stick through a real daemon on the simulated van (its sticks are images served by the real FUSE
drivers): plugged in, read-only in the session, the scans exported with ``kioskctl media export``, ejected, and the
receipt's counts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import Daemon, start_daemon
from tests.integration.stick_images import digest_tree, exported, fill, require_fuse


def wait_media(daemon: Daemon, mounted: str, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sticks = daemon.status()["media"]["sticks"]  # type: ignore[index]
        if sticks and sticks[-1]["mounted"] == mounted:
            return sticks[-1]  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"the stick never became {mounted}: {daemon.status()['media']}")


def stick_line(daemon: Daemon) -> str:
    """``kioskctl status``'s line for the citizen's stick (the whole text is checked for file names by callers)."""
    text = daemon.ctl("status").stdout
    return next(line for line in text.splitlines() if line.startswith("Clé USB du citoyen"))


def test_kioskctl_exports_the_scans_to_the_stick_and_ejects_it(tmp_path: Path) -> None:
    require_fuse()
    profile = tmp_path / "van.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("page_seconds = 4.0", "page_seconds = 0.05"))
    daemon = start_daemon(tmp_path, "--profile", str(profile))
    try:
        daemon.wait_for("READY=1")
        none = daemon.ctl("media", "export", check=False)
        assert none.returncode == 1 and "Aucun citoyen" in none.stderr
        assert stick_line(daemon).endswith("Aucune clé USB branchée")
        daemon.ctl("sim", "plug", "vfat", "CITOYEN")  # a fresh image under the runtime dir
        assert wait_media(daemon, "no")["label"] == "CITOYEN"  # outside a session: not mounted
        assert stick_line(daemon).endswith("CITOYEN · 67 Mo · vfat · branchée, non lue")
        image = daemon.runtime / "sim-media" / "sim-1.img"
        fill(image, "vfat", {"mes-papiers.pdf": b"canary-stick-own-file"})
        daemon.ctl("start")
        daemon.ctl("next")
        stick = wait_media(daemon, "ro")
        assert stick["fr"].startswith("Clé USB du citoyen : lecture seule")
        assert stick_line(daemon).endswith("CITOYEN · 67 Mo · vfat · lecture seule")
        assert "mes-papiers" not in daemon.ctl("status").stdout
        english = daemon.ctl("--lang", "en", "status").stdout
        line = next(line for line in english.splitlines() if line.startswith("Citizen's USB stick"))
        assert line.endswith("CITOYEN · 67 MB · vfat · read-only"), english
        daemon.ctl("sim", "scanner", "load", "2")
        daemon.ctl("scan", "--all")
        daemon.ctl("scan")
        done = daemon.ctl("media", "export", "--all")
        assert "2 document(s) copié(s)" in done.stdout
        answer = json.loads(daemon.ctl("--json", "media", "export").stdout)
        assert answer["ok"] and answer["files"] == 2
        assert "mes-papiers" not in json.dumps(daemon.status())
        daemon.ctl("media", "eject")
        wait_media(daemon, "no")
        daemon.ctl("next")
        receipt = json.loads(daemon.ctl("--json", "receipts").stdout)[0]
        media = next(h for h in receipt["handlers"] if h["name"] == "media")
        assert media["ok"] and (media["mounted"], media["exported"]) == (1, 4)
    finally:
        assert daemon.stop() == 0
    copies = exported(image, "vfat", "Scans")
    assert digest_tree(image, "vfat", skip="Scans") != {}
    assert len(copies) == 4 and all(data.startswith(b"%PDF-") for data in copies.values())
