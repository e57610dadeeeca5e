"""The ``[media]`` section: defaults that keep every existing profile valid, errors that name the key, and the
panel's view of a stick (label, size, file system; never a file name)."""

from __future__ import annotations

import pytest

from kioskd.errors import ProfileError
from kioskd.hal import MediaState, Stick
from kioskd.policies.media import MediaView, size_text
from kioskd.profile import SIM_PROFILE, load_profile, parse_profile
from kioskd.station.snapshot import Notice


def _minimal(**media: object) -> dict[str, object]:
    kinds = ("power", "modem", "displays", "scanner", "printer", "button", "audio", "camera")
    data: dict[str, object] = {"vehicle": {"id": "v1", "name": "Van"}, "devices": {k: {"driver": "sim"} for k in kinds}}
    if media:
        data["media"] = media
    return data


def test_a_profile_without_a_media_section_mounts_fat_exfat_and_ntfs_through_fuse() -> None:
    profile = parse_profile(_minimal(), "van.toml")
    assert profile.media.driver == "fuse"
    assert profile.media.filesystems == ("vfat", "exfat", "ntfs")
    assert profile.media.options()["export_folder"] == "Scans {date} {time}"


def test_the_simulated_van_plugs_image_files() -> None:
    assert load_profile(SIM_PROFILE).media.driver == "sim"


@pytest.mark.parametrize(
    ("media", "key"),
    [({"filesystems": ["ext4"]}, "media.filesystems"), ({"export_folder": "../dehors"}, "media.export_folder")],
)
def test_a_bad_media_key_is_named(media: dict[str, object], key: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(_minimal(**media), "van.toml")
    assert key in err.value.where


def test_the_panel_sees_label_size_and_read_only_never_a_name() -> None:
    state = MediaState((Stick("sim-1", "CITOYEN", 16_000_000_000, "vfat", "ro", "s1"),))
    shown = MediaView.of(state).to_json()["sticks"][0]
    assert shown["fr"] == "Clé USB du citoyen : lecture seule (CITOYEN, 16,0 Go)"
    assert shown["en"] == "Citizen's USB stick: read-only (CITOYEN, 16.0 GB)"
    assert set(shown) == {"label", "size", "filesystem", "mounted", "fault", "key", "fr", "en", "size_text"}
    assert shown["size_text"] == {"fr": "16,0 Go", "en": "16.0 GB"}  # kioskctl status's line


def test_a_small_sticks_size_is_in_each_languages_units_on_the_panel_and_in_the_notice() -> None:
    state = MediaState((Stick("sim-1", "", 67_108_864, "vfat", "no"),))
    shown = MediaView.of(state).to_json()["sticks"][0]
    assert shown["fr"] == "Clé USB du citoyen : —, 67 Mo (branchée)"
    assert shown["en"] == "Citizen's USB stick: —, 67 MB (plugged in)"
    notice = Notice("media", "media.mounted_ro", "info", (("label", "CLE"), ("size", size_text(2_500_000_000))))
    assert (notice.to_json()["fr"], notice.to_json()["en"]) == (
        "Clé USB du citoyen : lecture seule (CLE, 2,5 Go)",
        "Citizen's USB stick: read-only (CLE, 2.5 GB)",
    )
