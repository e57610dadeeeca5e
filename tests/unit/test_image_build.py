"""image-build/build.py's decisions that need no mkosi: which Debian packages a profile pulls in, which Python
dependencies come from Debian rather than wheels, and which files decide whether the image must be rebuilt."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.image_stage import build_module

ROOT = Path(__file__).resolve().parents[2]


build = build_module()


def _profile(name: str) -> dict[str, object]:
    return tomllib.loads((ROOT / "profiles" / name).read_text())


def test_sim_profile_needs_no_package_beyond_the_base_image() -> None:
    assert build.profile_packages(_profile("sim.toml")) == []


def test_a_chromium_session_app_brings_chromium_and_an_x_server() -> None:
    packages = build.profile_packages(_profile("example-van.toml"))
    assert "chromium" in packages and "xserver-xorg-core" in packages


def test_a_usb_button_brings_debians_evdev_binding_and_no_wheel() -> None:
    assert "python3-evdev" in build.profile_packages(_profile("example-van.toml"))
    assert not any(requirement.startswith("evdev") for requirement in build.requirements())


def test_backends_nested_in_a_combined_power_source_bring_their_packages() -> None:
    profile = {"devices": {"power": {"driver": "combined", "parts": {"ups": {"driver": "nut"}}}}}
    assert build.profile_packages(profile) == sorted(["nut-client", *build.MEDIA_PACKAGES])


def test_the_citizens_usb_sticks_bring_their_fuse_drivers_unless_the_profile_simulates_them() -> None:
    assert {"fuse3", "fusefat", "ntfs-3g"} <= set(build.profile_packages(_profile("example-van.toml")))
    assert build.profile_packages({"media": {"driver": "sim"}}) == []


def test_compiled_bindings_come_from_debian_not_from_wheels() -> None:
    names = [requirement.split(">")[0].split("=")[0].split("<")[0] for requirement in build.requirements()]
    assert not {"pycups", "python-sane", "systemd-python"} & set(names)
    assert {"fastapi", "pydantic", "opencv-python-headless"} <= set(names)


def test_the_image_inputs_cover_code_units_and_image_config_but_not_tests() -> None:
    files = {str(path.relative_to(ROOT)) for path in build.input_files()}
    assert {"pyproject.toml", "kioskd/daemon.py", "systemd/kioskd.service", "image-build/mkosi.conf"} <= files
    assert "image-build/cups/cupsd-kiosk.conf" in files
    assert not any(name.startswith("tests/") or "__pycache__" in name for name in files)


def test_a_van_with_x_screens_and_pulse_audio_brings_its_session_and_sound_server() -> None:
    packages = build.profile_packages(_profile("virtual-van.toml"))
    # the station's own X session (rootless Xorg through logind needs pam_systemd) and PulseAudio system-wide
    assert {"xserver-xorg-core", "xauth", "x11-xserver-utils", "libpam-systemd", "chromium"} <= set(packages)
    assert "pulseaudio" in packages and "python3-evdev" in packages


def test_the_disks_data_partition_carries_kioskds_configuration_and_state() -> None:
    # fstab: the data partition by its GPT label, bind-mounted over the two directories kioskd.service requires
    lines = [line.split() for line in build.FSTAB.splitlines() if line and not line.startswith("#")]
    assert lines[0][:3] == ["PARTLABEL=kioskd-data", build.DATA_MOUNT, "ext4"]
    binds = {line[1]: line[0] for line in lines[1:] if "bind" in line[3].split(",")}
    assert binds == {"/etc/kioskd": f"{build.DATA_MOUNT}/etc", "/var/lib/kioskd": f"{build.DATA_MOUNT}/state"}
    # the ESP, where RAUC's boot loader backend writes systemd-boot's entries and the update hook the kernels
    assert ["PARTLABEL=esp", build.ESP_MOUNT, "vfat"] in [line[:3] for line in lines]


def test_the_update_root_is_the_disks_root_with_rauc_and_systemd_boot_chooses_by_its_entries_order() -> None:
    assert "rauc" in build.BOOT_PACKAGES and set(build.BOOTABLE) == {"disk", "update"}
    # RAUC's Info (kioskd's check of a bundle) extracts a plain bundle's manifest with unsquashfs
    assert "squashfs-tools" in build.BOOT_PACKAGES
    assert build.FIRST_ENTRY == "kioskd-0001-a.conf"  # kioskd/update/bootloader.py's first generation
    source = (ROOT / "image-build/build.py").read_text()
    assert '"timeout 0\\neditor no\\n"' in source  # no `default`: a pattern would keep a bad entry chosen
    manifest = build.MANIFEST.format(compatible="kioskd-x86_64", version="2.0", build="ab" * 32, vehicle="v",
                                     built="now")  # fmt: skip
    assert "format=plain" in manifest and "version=2.0" in manifest and f"build={'ab' * 32}" in manifest
    unit = (ROOT / "systemd/kioskd.service").read_text()
    assert "RequiresMountsFor=/var/lib/kioskd /etc/kioskd" in unit


def test_the_data_partition_has_room_for_one_update_bundle_beside_kioskds_data() -> None:
    # the virtual van's root partition (3584 MiB) and its measured bundle (833 MB): downloaded whole before RAUC
    # checks it (Debian 12's rauc 1.8 has no streaming), with kioskd's 512 MiB and the download's reserve beside it
    size = build.data_mib(3584)
    assert size % 256 == 0 and size >= build.DATA_MIB + 833e6 / 2**20 + 64
    assert build.data_mib(8192) - build.DATA_MIB >= 4096  # a bigger root, a bigger bundle's room
