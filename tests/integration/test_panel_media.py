"""The citizen's USB stick on the agent panel, in a real browser against a real kioskd on the simulated van (its
sticks are file images served by the real FUSE drivers): the tile and its two buttons only while a stick is mounted
in a session, "Copier sur la clé" for the scans ticked or all of them, "Éjecter la clé", and the words for a full,
write-protected or pulled-out stick in French and English."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from kioskd.profile import SIM_PROFILE
from tests.integration import test_panel as panel_tests
from tests.integration.daemon_process import Daemon, start_daemon
from tests.integration.stick_images import digest_tree, exported, fill, make_image, require_fuse

# the panel's browser and page, as the panel's own tests make them (Debian's Chromium through Playwright)
browser = panel_tests.browser
page = panel_tests.page
OWN = {"mes-papiers.pdf": b"canary: the citizen's own file", "photos/identite.jpg": b"\xff\xd8canary-photo"}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    require_fuse()
    profile = tmp_path / "van.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("page_seconds = 4.0", "page_seconds = 0.05"))
    d = start_daemon(tmp_path, "--profile", str(profile))
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()


def sticks(daemon: Daemon) -> list[dict[str, object]]:
    found: list[dict[str, object]] = daemon.status()["media"]["sticks"]  # type: ignore[index]
    return found


def scans_in_session(daemon: Daemon, count: int) -> list[str]:
    daemon.ctl("sim", "scanner", "load", str(count))
    daemon.ctl("scan", "--all")
    for _ in range(count - 1):
        daemon.ctl("scan")
    answer = httpx.get(
        panel_tests.base(daemon) + "/scans", headers={"Authorization": f"Bearer {panel_tests.token(daemon)}"}
    )
    names = [s["file"] for s in answer.json()]
    assert len(names) == count, names
    return sorted(names)


def test_the_stick_tile_shows_its_buttons_only_while_a_stick_is_mounted_and_copies_the_ticked_scans(
    daemon: Daemon, page: Page, tmp_path: Path
) -> None:
    panel_tests.open_panel(page, daemon)
    tile = page.locator("#tile-media")
    export, eject = page.locator("#media-export"), page.locator("#media-eject")
    expect(tile.locator("h2")).to_have_text("Clé USB du citoyen")
    expect(tile.locator("[data-field=stick]")).to_have_text("Aucune clé USB branchée")
    daemon.ctl("sim", "plug", "vfat", "CITOYEN")  # outside a session: plugged, not mounted, no button
    image = daemon.runtime / "sim-media" / "sim-1.img"
    expect(tile.locator("[data-field=stick]")).to_have_attribute("data-mounted", "no")
    expect(export).to_be_hidden()
    expect(eject).to_be_hidden()
    fill(image, "vfat", OWN)
    before = digest_tree(image, "vfat")
    daemon.open_session()
    stick = tile.locator("[data-field=stick]")
    expect(stick).to_have_text("Clé USB du citoyen : lecture seule (CITOYEN, 67 Mo)", timeout=30_000)
    expect(export).to_be_visible()
    expect(eject).to_be_visible()
    expect(export).to_be_disabled()  # nothing scanned yet
    expect(tile.locator("[data-field=media-scans]")).to_have_text("Aucun document numérisé : scannez d'abord")
    page.locator("#lang").click()
    expect(stick).to_have_text("Citizen's USB stick: read-only (CITOYEN, 67 MB)")  # English units
    expect(export).to_have_text("Copy to the stick")
    expect(eject).to_have_text("Eject the stick")
    page.locator("#lang").click()
    assert "mes-papiers" not in page.content() and "identite" not in page.content()  # never a name from the stick

    names = scans_in_session(daemon, 3)
    picks = tile.locator("input[type=checkbox]")
    expect(picks).to_have_count(3)
    expect(tile.locator("[data-field=media-what]")).to_have_text("Copie de tous les documents (3)")
    page.locator(f"input[value='{names[1]}']").check()
    expect(tile.locator("[data-field=media-what]")).to_have_text("Copie des documents cochés (1)")
    expect(export).to_have_text("Copier sur la clé")
    export.click()
    result = tile.locator("[data-field=export]")
    expect(result).to_have_attribute("data-ok", "true", timeout=60_000)
    expect(result).to_contain_text("1 document(s) copié(s) sur la clé, dossier « Scans ")
    expect(result).to_contain_text("la clé est de nouveau en lecture seule")
    expect(stick).to_have_attribute("data-mounted", "ro")
    expect(tile.locator("input[type=checkbox]:checked")).to_have_count(0)  # the ticks went with the copy
    export.click()  # none ticked: all of them, into a second folder
    expect(result).to_contain_text("3 document(s) copié(s)", timeout=60_000)
    expect(eject).to_have_text("Éjecter la clé")
    eject.click()
    expect(result).to_have_text("Clé USB éjectée : vous pouvez la retirer")
    expect(stick).to_have_attribute("data-mounted", "no")
    expect(export).to_be_hidden()
    expect(eject).to_be_hidden()
    assert sticks(daemon)[0]["mounted"] == "no"
    daemon.ctl("next")  # the wipe verifies nothing of the stick stays; the next citizen's stick is not this one
    expect(export).to_be_hidden()
    copies = exported(image, "vfat", "Scans")
    assert sorted(name.split("/")[1] for name in copies) == sorted([names[1], *names])
    assert len({name.split("/")[0] for name in copies}) == 2
    assert all(data.startswith(b"%PDF-") for data in copies.values())
    assert digest_tree(image, "vfat", skip="Scans") == before  # the stick's own files, byte for byte


def test_a_write_protected_stick_says_so_in_both_languages_and_stays_read_only(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    scans_in_session(daemon, 1)
    panel_tests.open_panel(page, daemon)
    daemon.ctl("sim", "plug", "vfat", "VERROU", "locked")
    export = page.locator("#media-export")
    expect(export).to_be_enabled(timeout=30_000)
    export.click()
    result = page.locator("#tile-media [data-field=export]")
    expect(result).to_have_attribute("data-ok", "false", timeout=60_000)
    expect(result).to_have_text("Clé USB protégée en écriture (verrou sur la clé ?) : rien n'a été copié")
    expect(page.locator("#tile-media [data-field=stick]")).to_have_attribute("data-mounted", "ro")
    page.locator("#lang").click()
    expect(result).to_have_text("USB stick write-protected (lock switch?): nothing was copied")
    expect(page.locator("#notices [data-topic=media]")).to_have_text(
        "USB stick write-protected (lock switch?): nothing was copied"
    )


def test_a_full_stick_says_so_and_keeps_its_files(daemon: Daemon, page: Page) -> None:
    short = Path(tempfile.mkdtemp(prefix="full-", dir="/tmp"))  # a verb's word is 64 characters at most
    try:
        image = make_image(short / "full.img", "vfat", size_mb=2)
        own = {"gros-fichier.bin": b"\x5a" * 1_800_000}
        fill(image, "vfat", own)
        before = digest_tree(image, "vfat")
        daemon.open_session()
        scans_in_session(daemon, 2)
        panel_tests.open_panel(page, daemon)
        daemon.ctl("sim", "plug", str(image))
        page.locator("#media-export").click(timeout=30_000)
        result = page.locator("#tile-media [data-field=export]")
        expect(result).to_have_attribute("data-ok", "false", timeout=60_000)
        expect(result).to_contain_text("Clé USB pleine : 0 document(s) copié(s) ; libérez de la place")
        page.locator("#lang").click()
        expect(result).to_contain_text("USB stick full: 0 document(s) copied")
        page.locator("#media-eject").click()
        expect(page.locator("#tile-media [data-field=stick]")).to_have_attribute("data-mounted", "no")
        assert digest_tree(image, "vfat", skip="Scans") == before
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_a_stick_pulled_out_takes_its_buttons_away_and_the_notice_says_to_check_it(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    panel_tests.open_panel(page, daemon)
    daemon.ctl("sim", "plug", "vfat", "CLE")
    export = page.locator("#media-export")
    expect(export).to_be_visible(timeout=30_000)
    daemon.ctl("sim", "pull")
    expect(export).to_be_hidden()
    expect(page.locator("#tile-media [data-field=stick]")).to_have_text("Aucune clé USB branchée")
    notice = page.locator("#notices [data-topic=media]")
    expect(notice).to_have_text(
        "Clé USB retirée sans éjection : elle a été détachée, vérifiez ses fichiers sur un autre poste"
    )
    page.locator("#lang").click()
    expect(notice).to_have_text(
        "USB stick pulled out without eject: it was detached; check its files on another computer"
    )
    # the API the buttons call says the same: nothing is mounted any more
    answer = httpx.post(
        panel_tests.base(daemon) + "/media/export",
        json={"all": True},
        headers={"Authorization": f"Bearer {panel_tests.token(daemon)}"},
    )
    assert answer.status_code == 409 and answer.json()["error"]["en"] == "No USB stick mounted for this citizen"
