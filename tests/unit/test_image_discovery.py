"""The image's driverless discovery (image-build/avahi/, image-build/ipp-usb/): Avahi runs for ipp-usb and
sane-airscan but on loopback only, ipp-usb serves on the ports kioskd looks at, and neither logs a print job's
exchange (its title can name the citizen)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from drivers.printer.cups import CupsPrinterOptions
from tests.image_stage import staged

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "image-build"


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",), interpolation=None)
    parser.read_string(path.read_text())
    return parser


def test_avahi_announces_and_listens_on_loopback_only() -> None:
    avahi = _ini(IMAGE / "avahi" / "avahi-daemon.conf")
    assert avahi["server"]["allow-interfaces"] == "lo"
    assert "deny-interfaces" not in avahi["server"]
    assert avahi["wide-area"]["enable-wide-area"] == "no"
    assert avahi["reflector"]["enable-reflector"] == "no"
    assert avahi["publish"]["publish-workstation"] == "no" and avahi["publish"]["publish-hinfo"] == "no"


def test_ipp_usb_serves_on_loopback_on_the_ports_kioskd_looks_at_and_logs_no_job() -> None:
    ipp_usb = _ini(IMAGE / "ipp-usb" / "ipp-usb.conf")
    network, logging = ipp_usb["network"], ipp_usb["logging"]
    assert network["interface"] == "loopback" and network["dns-sd"] == "enable"
    ports = (int(network["http-min-port"]), int(network["http-max-port"]))
    assert ports == CupsPrinterOptions.model_fields["ipp_usb_ports"].default
    for log in ("device-log", "main-log", "console-log"):
        assert not re.search(r"all|trace|debug", logging[log]), (log, logging[log])


def test_the_image_installs_both_and_no_longer_masks_avahi(tmp_path: Path) -> None:
    tree = staged(tmp_path, ROOT / "profiles" / "sim.toml")
    assert (tree / "etc/avahi/avahi-daemon.conf").read_bytes() == (IMAGE / "avahi/avahi-daemon.conf").read_bytes()
    assert (tree / "etc/ipp-usb/ipp-usb.conf").read_bytes() == (IMAGE / "ipp-usb/ipp-usb.conf").read_bytes()
    postinst = (IMAGE / "mkosi.postinst").read_text()
    assert not re.search(r"mask\s+\S*avahi|avahi-daemon\.service.*\n.*mask", postinst)
    assert "systemctl enable avahi-daemon.service" in postinst
