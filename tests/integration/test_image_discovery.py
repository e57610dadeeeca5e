"""The image's driverless discovery with the real daemons: Avahi with image-build/avahi/avahi-daemon.conf serves
DNS-SD on loopback (what ipp-usb announces its USB printer and scanner on, and sane-airscan browses) and on no
other interface; ipp-usb accepts image-build/ipp-usb/ipp-usb.conf. Each runs in private network and mount
namespaces (its own lo and a veth standing for the van's Ethernet), so nothing reaches this machine's networks."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration import require

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VAN_AVAHI_CONF = ROOT / "image-build" / "avahi" / "avahi-daemon.conf"
STOCK_AVAHI_CONF = Path("/etc/avahi/avahi-daemon.conf")  # Debian's, from the avahi-daemon package
VAN_IPP_USB_CONF = ROOT / "image-build" / "ipp-usb" / "ipp-usb.conf"
APT = "avahi-daemon avahi-utils iproute2 util-linux dbus"

# Runs as PID 1's child of `unshare --net --mount --fork`: a fresh lo, a veth "van0" with multicast (a LAN the van
# parks on), a tmpfs /run (avahi's pid file and socket), a private bus; a service published as ipp-usb does, then
# browsed and resolved as sane-airscan does. Every process is stopped by its PID.
SCRIPT = r"""
set -eu
W=$1; CONF=$2
wait_for() { i=0; until grep -q "$2" "$1" 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || return 1; sleep 0.05; done; }
ip link set lo up
ip link add van0 type veth peer name van1
ip addr add 10.77.0.1/24 dev van0
ip link set van1 up
ip link set van0 multicast on up
mount -t tmpfs tmpfs /run
mkdir /run/avahi-daemon
dbus-daemon --session --nofork --nopidfile --print-address=3 --address="unix:path=$W/bus" 3>"$W/bus.addr" &
BUS=$!
wait_for "$W/bus.addr" unix
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/bus"
avahi-daemon -f "$CONF" --no-chroot --no-drop-root --no-rlimits --debug > "$W/avahi.log" 2>&1 &
AVAHI=$!
wait_for "$W/avahi.log" "Server startup complete" || true
avahi-publish -s KioskPrinter _ipp._tcp 60000 > "$W/publish.log" 2>&1 &
PUB=$!
wait_for "$W/publish.log" Established || true
avahi-browse --resolve --parsable --terminate _ipp._tcp > "$W/browse.txt" 2> "$W/browse.err" || true
kill $PUB $AVAHI $BUS
wait $PUB $AVAHI $BUS 2> /dev/null || true
"""


def _in_namespaces(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``argv`` under unshare (a private network and mount namespace), its whole process group stopped if it
    outlives ``timeout``."""
    unshare = require.binary("unshare", APT)
    proc = subprocess.Popen(
        [unshare, "--net", "--mount", "--fork", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{argv[0]} did not finish within {timeout} s:\n{out}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


def _avahi(tmp_path: Path, conf: Path) -> tuple[str, str]:
    """Avahi with ``conf`` in its own namespaces: its log and what a browser found."""
    for name in ("avahi-daemon", "avahi-publish", "avahi-browse", "ip", "dbus-daemon"):
        require.binary(name, APT)
    work = tmp_path / conf.parent.name
    work.mkdir()
    script = work / "discover.sh"
    script.write_text(SCRIPT)
    done = _in_namespaces(["sh", str(script), str(work), str(conf)])
    assert done.returncode == 0, done.stdout
    log = (work / "avahi.log").read_text()
    assert "Server startup complete" in log, log
    return log, (work / "browse.txt").read_text()


def test_avahi_as_the_image_configures_it_serves_dns_sd_on_loopback_only(tmp_path: Path) -> None:
    log, browsed = _avahi(tmp_path, VAN_AVAHI_CONF)
    # What ipp-usb announces on lo is found and resolved there (sane-airscan's way to the USB scanner) ...
    resolved = [line.split(";") for line in browsed.splitlines() if line.startswith("=")]
    assert [(r[1], r[3], r[7], r[8]) for r in resolved if r[2] == "IPv4"] == [
        ("lo", "KioskPrinter", "127.0.0.1", "60000")
    ], browsed
    assert "Joining mDNS multicast group on interface lo.IPv4" in log, log
    # ... and the van's LAN hears nothing from it, nor is it listened to.
    assert "van0" not in log, log
    assert all(r[1] == "lo" for r in resolved), browsed


def test_stock_avahi_would_announce_on_the_vans_lan(tmp_path: Path) -> None:
    # The same namespaces with Debian's own configuration: the veth is an interface Avahi takes when allowed, so
    # the test above proves the image's file, not a veth Avahi would ignore anyway.
    log, _ = _avahi(tmp_path, STOCK_AVAHI_CONF)
    assert "Joining mDNS multicast group on interface van0.IPv4" in log, log


def test_ipp_usb_accepts_the_images_configuration(tmp_path: Path) -> None:
    ipp_usb = require.binary("ipp-usb", "ipp-usb")
    # ipp-usb reads only /etc/ipp-usb/ipp-usb.conf: the image's file is bind-mounted there in a private namespace.
    script = tmp_path / "check.sh"
    script.write_text(f'set -eu\nmount --bind "{VAN_IPP_USB_CONF}" /etc/ipp-usb/ipp-usb.conf\nexec {ipp_usb} check\n')
    done = _in_namespaces(["sh", str(script)])
    assert done.returncode == 0 and "Configuration files: OK" in done.stdout, done.stdout
