"""RAUC's boot loader backend for systemd-boot (kioskd/update/bootloader.py) on an ESP in a temporary directory, and
the van's whole A/B story told with systemd-boot's own rules (252: entries with no tries left sort last, then by
id descending, the first boots; each boot of a counting entry spends a try; systemd-bless-boot drops the counter
after boot-complete.target): a new slot that never proves itself is passed over after its tries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kioskd.update import bootloader
from kioskd.update.bootloader import BackendError, entries, primary, set_primary, set_state, state

OPTIONS = "rw console=tty1 console=ttyS0,115200 systemd.show_status=yes loglevel=4"


@pytest.fixture
def esp(tmp_path: Path) -> Path:
    """The ESP as image-build/build.py lays it out: root A's entry, its kernel, and B's kernel once a bundle's hook
    copied it."""
    (tmp_path / "loader/entries").mkdir(parents=True)
    (tmp_path / "loader/loader.conf").write_text("timeout 0\neditor no\n")
    (tmp_path / "loader/entries/kioskd-0001-a.conf").write_text(
        "title kioskd (root A)\nlinux /vmlinuz-a\ninitrd /initrd-a\n"
        f"options root=PARTLABEL=root-a rauc.slot=a {OPTIONS}\n"
    )
    for name in ("vmlinuz-a", "initrd-a", "vmlinuz-b", "initrd-b"):
        (tmp_path / name).write_bytes(b"kernel")
    return tmp_path


def boot(esp: Path) -> str:
    """What systemd-boot does at power on: the first entry in its order boots, spending one try if it counts."""
    (first,) = entries(esp)[:1]
    assert not first.bad, "systemd-boot would boot a bad entry only when nothing else is left"
    if first.counting:
        assert first.left is not None and first.done is not None
        counted = re.sub(r"\+\d+(-\d+)?\.conf$", f"+{first.left - 1}-{first.done + 1}.conf", first.path.name)
        first.path.rename(first.path.with_name(counted))
    return first.slot


def bless(esp: Path) -> None:
    """systemd-bless-boot after boot-complete.target: the booted entry loses its counter."""
    for entry in entries(esp):
        if entry.left is not None and not entry.bad:
            entry.path.rename(entry.path.with_name(re.sub(r"\+\d+(-\d+)?\.conf$", ".conf", entry.path.name)))


def test_the_flashed_disk_boots_root_a_and_both_slots_read_as_rauc_expects(esp: Path) -> None:
    assert primary(esp) == "a"
    assert state(esp, "a") == "good"
    assert state(esp, "b") == "bad"  # never written: nothing to boot


def test_set_primary_writes_a_counting_entry_of_the_next_generation_with_the_slots_root(esp: Path) -> None:
    target = set_primary(esp, "b", tries=3)
    assert target.name == "kioskd-0002-b+3.conf"
    text = target.read_text()
    assert "linux /vmlinuz-b\ninitrd /initrd-b\n" in text
    assert f"options root=PARTLABEL=root-b rauc.slot=b {OPTIONS}\n" in text
    assert primary(esp) == "b"
    assert "default" not in (esp / "loader/loader.conf").read_text()


def test_a_slot_being_written_is_marked_bad_first_so_a_power_cut_boots_the_old_one(esp: Path) -> None:
    set_primary(esp, "b")
    bless(esp)
    # RAUC's order for the next update, into slot a: set-state a bad, write, set-primary a; power lost after the first
    set_state(esp, "a", good=False)
    assert primary(esp) == "b" and state(esp, "a") == "bad"
    assert boot(esp) == "b"


def test_a_new_slot_that_never_proves_itself_is_abandoned_after_its_tries(esp: Path) -> None:
    set_primary(esp, "b", tries=3)
    booted = [boot(esp) for _ in range(4)]  # three failed boots of b (never blessed), then the loader gives up
    assert booted == ["b", "b", "b", "a"]
    assert state(esp, "b") == "bad" and primary(esp) == "a"
    assert [e.path.name for e in entries(esp)] == ["kioskd-0001-a.conf", "kioskd-0002-b+0-3.conf"]


def test_a_new_slot_blessed_on_its_first_boot_stays_the_one_booted(esp: Path) -> None:
    set_primary(esp, "b", tries=3)
    assert boot(esp) == "b"
    bless(esp)
    assert [boot(esp) for _ in range(3)] == ["b", "b", "b"]
    assert [e.path.name for e in entries(esp)] == ["kioskd-0002-b.conf", "kioskd-0001-a.conf"]


def test_the_next_update_goes_back_into_slot_a_with_a_newer_generation(esp: Path) -> None:
    set_primary(esp, "b")
    boot(esp)
    bless(esp)
    set_state(esp, "a", good=False)
    set_primary(esp, "a", tries=2)
    assert [e.path.name for e in entries(esp)] == ["kioskd-0003-a+2.conf", "kioskd-0002-b.conf"]
    assert "root=PARTLABEL=root-a rauc.slot=a" in (esp / "loader/entries/kioskd-0003-a+2.conf").read_text()
    assert [boot(esp) for _ in range(3)] == ["a", "a", "b"]  # v3 fails twice: back on v2


def test_rauc_mark_good_drops_the_counter_like_systemd_bless_boot(esp: Path) -> None:
    set_primary(esp, "b", tries=3)
    boot(esp)
    set_state(esp, "b", good=True)
    assert entries(esp)[0].path.name == "kioskd-0002-b.conf"


def test_a_slot_without_its_kernel_on_the_esp_is_never_made_primary(esp: Path) -> None:
    (esp / "vmlinuz-b").unlink()
    with pytest.raises(BackendError, match="vmlinuz-b"):
        set_primary(esp, "b")
    assert primary(esp) == "a" and len(entries(esp)) == 1


def test_rauc_calls_it_with_its_verbs_and_reads_the_answers(
    esp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KIOSKD_ESP", str(esp))
    monkeypatch.setenv("KIOSKD_BOOT_TRIES", "2")
    assert bootloader.main(["get-primary"]) == 0
    assert capsys.readouterr().out == "a\n"
    assert bootloader.main(["set-state", "b", "bad"]) == 0
    assert bootloader.main(["set-primary", "b"]) == 0
    assert (esp / "loader/entries/kioskd-0002-b+2.conf").exists()
    assert bootloader.main(["get-state", "b"]) == 0
    assert capsys.readouterr().out == "good\n"
    assert bootloader.main(["set-state", "b", "sideways"]) == 2
    (esp / "loader/entries/kioskd-0002-b+2.conf").unlink()
    (esp / "loader/entries/kioskd-0001-a.conf").unlink()
    assert bootloader.main(["get-primary"]) == 1
    assert "no bootable kioskd entry" in capsys.readouterr().err
