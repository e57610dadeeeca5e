"""The van as a technician flashes it: the disk image boots in qemu through OVMF and systemd-boot, and the station
is driven only from outside — the button is qemu's USB keyboard (QMP input-send-event), the battery monitor is
qemu's FTDI usb-serial fed with VE.Direct text, the two screens are virtio-gpu's two heads read by QMP screendump,
the state comes from the QEMU guest agent's channel and the API (the serial console is kept for failure reports).

The tests run in file order on one boot (a boot under TCG costs a minute or two): power on, the screens, the battery,
the button, privacy, a session with its app window, the citizen's own touchscreen and keyboard ignored, then handed
over (a tap and a typed canary on the page), curtained by privacy, and a confidential entry ended by the button; the
citizen's USB stick (hot-plugged, read-only, the scans exported, ejected, pulled), the battery notice, next citizen
(the stick and the hand-over's counts checked after its wipe), a crash of kioskd, and the long press that wipes and
powers the PC off. Each prints what it measured."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.vm import usb_stick
from tests.vm.conftest import report
from tests.vm.virtual_van import CURTAIN, PANEL_BLUE, VanError, VirtualVan, share

# Longer than the suite's 10 minutes per test (pyproject.toml):
# the disk's build (cold: mkosi, minutes) and a TCG boot count in the first test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

BOOT_TIMEOUT = 900.0  # TCG on a 2-core machine shared with other jobs: seen 3 to 7 minutes
MAGENTA, GREEN = (255, 0, 255), (0, 200, 0)  # the session app's test page (profiles/virtual-van.toml)
BAND = 120  # the panel's header band above the session app's window
W, H = 1280, 800


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def heads(van: VirtualVan) -> tuple[Image.Image, Image.Image]:
    return van.screendump(0), van.screendump(1)


def wait_heads(van: VirtualVan, check: object, timeout: float, what: str) -> tuple[Image.Image, Image.Image]:
    deadline = time.monotonic() + timeout
    agent = citizen = None
    while time.monotonic() < deadline:
        agent, citizen = heads(van)
        if check(agent, citizen):  # type: ignore[operator]
            return agent, citizen
        time.sleep(1.0)
    if agent is not None and citizen is not None:
        agent.save(van.work / "fail-agent.png")
        citizen.save(van.work / "fail-citizen.png")
    raise VanError(f"the screens did not show {what} within {timeout:.0f} s (pictures in {van.work})\n{van.tail()}")


def shows_panel(image: Image.Image) -> bool:
    """The panel's header band: mostly the panel's blue along the top of the screen."""
    return share(image, PANEL_BLUE, (0, 0, W, 60)) > 0.5


def test_power_on_reaches_ready_through_ovmf_and_systemd_boot(van: VirtualVan, pytestconfig: pytest.Config) -> None:
    ready = van.wait_active("kioskd.service", BOOT_TIMEOUT)  # seconds since the guest's kernel started
    seen = van.mark("power on → kioskd active, seen from outside")
    show = van.unit("kioskd.service", "ActiveState", "SubState", "StatusText", "NRestarts")
    assert show["ActiveState"] == "active" and show["StatusText"] == "off", show
    # it booted from the disk as a PC would: UEFI, systemd-boot, root A, the data partition under kioskd's dirs
    loader = van.sh("cat /sys/firmware/efi/efivars/LoaderInfo-* | tr -d '\\000'")
    assert "systemd-boot" in loader, loader
    mounts = van.sh("for m in / /var/lib/kioskd /etc/kioskd; do findmnt -n -o SOURCE,TARGET --mountpoint $m; done")
    assert "/dev/vda2 /" in mounts and mounts.count("/dev/vda4") == 2, mounts
    # the unit as shipped, rated by the guest's own systemd: no hardening was dropped to reach X and the sound server
    rating = van.sh("systemd-analyze security kioskd.service --no-pager | tail -1")
    found = re.search(r"exposure level for kioskd\.service: ([0-9.]+)", rating)
    assert found, rating
    exposure = float(found.group(1))
    # 3.4: the 3.2 of the unit before, plus the mount and IPC namespaces the session app's launcher confines it in
    # (kioskd/session/confine.py; the reason is in tests/integration/test_systemd_units.py)
    assert exposure <= 3.4, rating
    report(pytestconfig, f"\npower on → kioskd READY {ready:.1f} s after the kernel started (seen from outside at "
           f"{seen:.1f} s); kioskd.service exposure {exposure}")  # fmt: skip


def test_both_screens_light_up_with_the_panel_mirrored(van: VirtualVan, pytestconfig: pytest.Config) -> None:
    agent, _ = wait_heads(van, lambda a, c: shows_panel(a) and same(a, c), 300, "the panel mirrored")
    lit = van.mark("power on → both screens show the station")
    assert not same(agent, Image.new("RGB", agent.size))
    x = van.sh("systemctl show -p ActiveState,MainPID kioskd-desktop.service; ps -o user= -C Xorg")
    assert "ActiveState=active" in x and x.strip().splitlines()[-1].strip() == "agent", x  # X without root
    report(pytestconfig, f"power on → both screens show the panel: {lit:.1f} s")


def test_kioskd_reports_the_battery_monitors_figures(van: VirtualVan) -> None:
    status = van.wait_status(lambda s: s["power"]["available"] and s["power"]["soc"] == 87.6, 180, "the BMV's SOC")
    power = status["power"]
    assert power["voltage"] == 12.84 and power["current"] == 3.1 and power["shore"] is True, power
    assert status["displays"]["outputs"][0]["name"] == "Virtual-1", status["displays"]
    assert status["audio"]["present"] is True, status["audio"]  # the system-wide PulseAudio answered


def test_the_button_starts_the_station_and_the_citizen_screen_mirrors(van: VirtualVan) -> None:
    pressed = time.monotonic()
    van.press()
    status = van.wait_status(lambda s: s["station"]["state"] == "ready", 180, "the station ready")
    van.marks["button → ready"] = time.monotonic() - pressed
    assert status["displays"]["mirrored"] is True and status["displays"]["layout"] == "mirror", status["displays"]
    wait_heads(van, lambda a, c: shows_panel(a) and same(a, c), 120, "the mirror after the start")


def test_privacy_curtains_the_citizen_screen_and_leaves_the_agents(van: VirtualVan) -> None:
    van.sh("/opt/kioskd/bin/kioskctl privacy on")
    agent, _ = wait_heads(
        van, lambda a, c: share(c, CURTAIN) > 0.6 and shows_panel(a), 120, "the curtain on the citizen screen only"
    )
    assert share(agent, CURTAIN) < 0.05
    van.sh("/opt/kioskd/bin/kioskctl privacy off")
    wait_heads(van, lambda a, c: shows_panel(a) and same(a, c), 120, "the mirror back after privacy")


def test_a_second_press_opens_a_session_whose_app_window_shows_on_both_screens(van: VirtualVan) -> None:
    pressed = time.monotonic()
    van.press()
    van.wait_status(lambda s: s["station"]["state"] == "in_session", 180, "a session")
    left, right = (0, BAND + 40, W // 2, H - 40), (W // 2, BAND + 40, W, H - 40)

    def app_shown(a: Image.Image, c: Image.Image) -> bool:
        return share(a, MAGENTA, left) > 0.9 and share(a, GREEN, right) > 0.9 and same(a, c)

    agent, _ = wait_heads(van, app_shown, 420, "the session app's window on both screens")
    van.marks["button → session app window"] = time.monotonic() - pressed
    assert shows_panel(agent), "the panel's header band must stay in view above the session app"
    users = van.sh("ps -o user= -C chromium | sort | uniq -c")
    assert "kiosk-citizen" in users and "agent" in users, users


# The session app's test page (profiles/virtual-van.toml) lights a band for a key typed on it (top) and for a tap
# (bottom): blue for the first, red for the second; unlit it keeps the page's magenta | green.
BLUE, RED = (0, 0, 255), (255, 0, 0)
TYPED = (0, 130, W, 130 + int(0.3 * 680) - 10)  # 30 vh of the 680 px window, below the panel's band
TAPPED = (0, H - int(0.2 * 680) + 10, W, H - 5)
SETTLE = 20.0  # seconds given to an input that must not arrive (under TCG a delivered one shows within a few)


def lit(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return share(image, BLUE, box) > 0.6 or share(image, RED, box) > 0.6


def test_the_citizens_own_touchscreen_and_keyboard_are_found_and_ignored_until_handed_over(van: VirtualVan) -> None:
    """Issue 23's default: the citizen watches. qemu's usb-tablet on the citizen's head and a second usb-kbd are
    found by their udev properties and disabled in X; a tap and keys on them reach neither screen."""
    status = van.status()
    citizen = [d for d in status["inputs"]["devices"] if d["side"] == "citizen"]
    assert sorted(d["kind"] for d in citizen) == ["keyboard", "touch"], status["inputs"]
    assert not any(d["enabled"] for d in citizen), status["inputs"]
    assert not status["handover"]["handover"] and not status["handover"]["confidential"], status["handover"]
    van.citizen_touch(0.5, 0.6)
    van.citizen_keys("kiosk")
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        for head in heads(van):
            assert not lit(head, TYPED) and not lit(head, TAPPED), "the citizen's input reached the page"
        time.sleep(2.0)


PAGE = (0, 400, W // 2, 500), (W // 2, 400, W, 500)  # a strip of the page between its bands: magenta | green
HANDOVER: dict[str, object] = {}  # the session the hand-over tests ran in, for the receipt after its wipe


def page(image: Image.Image) -> bool:
    left, right = PAGE
    return share(image, MAGENTA, left) > 0.9 and share(image, GREEN, right) > 0.9


def band(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int] | None:
    """The colour of a band the page lit (blue: the first canary, red: the second), None when unlit."""
    for colour in (BLUE, RED):
        if share(image, colour, box) > 0.6:
            return colour
    return None


def test_handed_over_the_citizens_tap_and_typed_canary_reach_the_page_on_both_screens(
    van: VirtualVan, pytestconfig: pytest.Config
) -> None:
    """ "Main au citoyen": the citizen's devices live, the tablet mapped to the citizen's output; the page lights its
    band only when the five keys arrive as typed ("kiosk"), so a keyboard mapped wrong fails here too."""
    HANDOVER["session"] = van.status()["session"]["id"]
    asked = time.monotonic()
    van.sh("/opt/kioskd/bin/kioskctl handover on")
    status = van.wait_status(lambda s: s["handover"]["handover"], 60, "the hand-over")
    van.marks["handover on → citizen devices live"] = time.monotonic() - asked
    touch = next(d for d in status["inputs"]["devices"] if d["side"] == "citizen" and d["kind"] == "touch")
    assert touch["enabled"] and touch["mapped_to"] == "Virtual-2", touch
    van.citizen_touch(0.5, 0.6)
    wait_heads(van, lambda a, c: band(c, TAPPED) == BLUE and same(a, c), 120, "the citizen's tap on the page")
    van.citizen_keys("kiosk")
    wait_heads(van, lambda a, c: band(c, TYPED) == BLUE and same(a, c), 120, "the citizen's typed canary on the page")
    report(
        pytestconfig, f"\nhandover on → citizen devices live: {van.marks['handover on → citizen devices live']:.1f} s"
    )


def test_under_the_privacy_curtain_the_citizens_devices_are_off_and_the_hand_over_ends(van: VirtualVan) -> None:
    van.sh("/opt/kioskd/bin/kioskctl privacy on")
    wait_heads(van, lambda a, c: share(c, CURTAIN) > 0.6 and shows_panel(a), 120, "the curtain on the citizen screen")
    status = van.status()
    assert not status["handover"]["handover"], status["handover"]
    assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "citizen"), status["inputs"]
    van.citizen_keys("kiosk")  # a second canary or tap would turn a band red
    van.citizen_touch(0.5, 0.6)
    time.sleep(SETTLE)
    van.sh("/opt/kioskd/bin/kioskctl privacy off")
    _, citizen = wait_heads(van, lambda a, c: page(a) and same(a, c), 120, "the page again after privacy")
    assert band(citizen, TYPED) == BLUE and band(citizen, TAPPED) == BLUE, "an input under the curtain reached the page"


def test_confidential_entry_curtains_the_agent_while_the_citizen_types_and_the_button_ends_it(
    van: VirtualVan, pytestconfig: pytest.Config
) -> None:
    session = van.status()["session"]["id"]
    asked = time.monotonic()
    van.sh("/opt/kioskd/bin/kioskctl confidential on")
    wait_heads(van, lambda a, c: share(a, CURTAIN) > 0.6 and page(c), 120, "the agent's curtain, the citizen's page")
    van.marks["confidential on → agent curtain on screen"] = time.monotonic() - asked
    status = van.status()
    assert status["handover"]["confidential"] and status["displays"]["layout"] == "confidential", status["handover"]
    assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "agent"), status["inputs"]
    van.citizen_keys("kiosk")
    agent, _ = wait_heads(van, lambda a, c: band(c, TYPED) == RED, 120, "the second canary on the citizen's page")
    assert share(agent, CURTAIN) > 0.6 and band(agent, TYPED) is None, "the agent's screen showed the citizen typing"
    van.press()  # the button's short press: the agent takes the controls back, no next citizen
    status = van.wait_status(lambda s: not s["handover"]["confidential"], 120, "the end of the confidential entry")
    assert status["session"]["id"] == session and status["station"]["state"] == "in_session", status["station"]
    wait_heads(van, lambda a, c: page(a) and same(a, c), 120, "the mirror again")
    report(
        pytestconfig, f"confidential on → agent curtain: {van.marks['confidential on → agent curtain on screen']:.1f} s"
    )


def kioskd_mounts(van: VirtualVan) -> list[tuple[str, str, str]]:
    """(target, fstype, options) of every FUSE mount in kioskd's own mount namespace (PrivateMounts=: no other
    process of the PC sees the citizen's mounts, so the guest's findmnt looks from inside kioskd's)."""
    pid = van.unit("kioskd.service", "MainPID")["MainPID"]
    out = van.sh(f"nsenter -t {pid} -m findmnt -n -r -o TARGET,FSTYPE,OPTIONS")
    rows = [tuple(line.split(" ", 2)) for line in out.splitlines() if line.count(" ") >= 2]
    # fusectl is the kernel's FUSE control file system (/sys/fs/fuse/connections, mounted at boot by systemd once
    # the image loads fuse): no stick's; fuse, fuse.* and fuseblk are the drivers' mounts
    return [(t, f, o) for t, f, o in rows if f.startswith("fuse") and f != "fusectl"]  # type: ignore[misc]


STICK: dict[str, object] = {}  # what the stick's test leaves for the check after the wipe (one boot, file order)


def stick_driver(van: VirtualVan) -> dict[str, str]:
    """The stick's FUSE driver in the guest: its /proc status fields, its network namespace and the guest's, and
    the uid of kiosk-media (the image's sysusers) and the stick's node owner, group and mode (/dev/sd*)."""
    out = van.sh(
        'pid=$(pgrep -x fusefat); [ $(echo $pid | wc -w) -eq 1 ] || { echo "drivers: $pid" >&2; exit 1; }; '
        "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/$pid/status; "
        'echo "net:$(readlink /proc/$pid/ns/net)"; echo "init_net:$(readlink /proc/1/ns/net)"; '
        'echo "kioskd_net:$(readlink /proc/$(systemctl show -p MainPID --value kioskd.service)/ns/net)"; '
        'echo "media_uid:$(id -u kiosk-media)"; echo "media_gid:$(id -g kiosk-media)"; '
        "echo \"nodes:$(stat -c '%U:%G:%a' /dev/sd* | sort -u | tr '\\n' ' ')\""
    )
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_the_citizens_usb_stick_is_read_only_in_the_session_takes_the_scans_and_is_ejected(
    van: VirtualVan, pytestconfig: pytest.Config
) -> None:
    started = time.monotonic()
    session = van.status()["session"]
    assert session is not None, "the stick's test runs while a citizen's session is open"
    image = van.work / "citizen-stick.img"
    usb_stick.make_stick(image)
    usb_stick.plug(van, image)
    try:
        status = van.wait_status(
            lambda s: any(stick["mounted"] == "ro" for stick in s["media"]["sticks"]), 120, "the stick read-only"
        )
    except VanError as exc:  # what the guest saw of it: the kernel's and kioskd's own words (no file names)
        seen = van.sh(
            "dmesg | grep -iE 'usb|sd[a-z]|fuse' | tail -15; journalctl -u kioskd -n 30 --no-pager; "
            "grep -E ' sd$|fuse' /proc/devices; ls -l /dev/sd* /dev/fuse"
        )
        now = van.status()
        parts = json.dumps({"media": now["media"], "notices": now["notices"]})
        raise VanError(f"{str(exc)[:300]}\n-- guest --\n{seen}\n-- media --\n{parts}") from None
    plugged = time.monotonic() - started
    (stick,) = status["media"]["sticks"]
    assert (stick["label"], stick["filesystem"]) == (usb_stick.LABEL, "vfat"), stick
    assert stick["fr"].startswith("Clé USB du citoyen : lecture seule (CITOYEN, "), stick
    assert not any(Path(name).stem in json.dumps(status) for name in usb_stick.CANARIES), "a file name is shown"
    # mounted by its FUSE driver, read-only, nosuid,nodev,noexec, in the session's workspace; a write is refused
    target = f"{session['workspace']}/media/cle-1"
    mounts = {t: (f, o.split(",")) for t, f, o in kioskd_mounts(van)}
    assert target in mounts, mounts
    fstype, options = mounts[target]
    assert fstype == "fuse.fusefat" and {"ro", "nosuid", "nodev", "noexec"} <= set(options), mounts[target]
    pid = van.unit("kioskd.service", "MainPID")["MainPID"]
    refused = van.sh(f"nsenter -t {pid} -m sh -c 'touch {target}/x 2>&1; echo rc=$?'")
    assert "rc=0" not in refused and "Read-only" in refused, refused
    # its driver, which parses the citizen's media: kiosk-media alone, CAP_SYS_ADMIN as its only capability in every
    # set, no_new_privs, a network namespace of its own; the stick's node kiosk's, readable by kiosk-media only
    driver = stick_driver(van)
    assert driver["Uid"].split() == [driver["media_uid"]] * 4, driver
    assert driver["Gid"].split() == [driver["media_gid"]] * 4 and driver["Groups"] == "", driver
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert driver[name] == "0000000000200000", (name, driver)  # CAP_SYS_ADMIN (21) only
    assert driver["NoNewPrivs"] == "1", driver
    assert driver["net"] not in (driver["init_net"], driver["kioskd_net"]), driver
    assert driver["nodes"].split() == ["kiosk:kiosk-media:640"], driver
    # one scan of this citizen, onto the stick in a new folder, synced; read-only again
    van.sh("/opt/kioskd/bin/kioskctl scan", timeout=300)
    copying = time.monotonic()
    answer = json.loads(van.sh("/opt/kioskd/bin/kioskctl --json media export --all", timeout=300))
    exported = time.monotonic() - copying
    assert answer["ok"] is True and answer["files"] == 1 and answer["folder"].startswith("Scans "), answer
    van.wait_status(lambda s: [st["mounted"] for st in s["media"]["sticks"]] == ["ro"], 60, "read-only again")
    van.sh("/opt/kioskd/bin/kioskctl media eject", timeout=120)
    van.wait_status(lambda s: [st["mounted"] for st in s["media"]["sticks"]] == ["no"], 60, "the stick ejected")
    assert target not in {t for t, _, _ in kioskd_mounts(van)}
    usb_stick.pull(van)
    van.wait_status(lambda s: s["media"]["sticks"] == [], 60, "the stick gone from the status")
    STICK.update(image=image, session=session["id"], folder=answer["folder"])
    van.marks["stick plug → mounted read-only"] = plugged
    total = time.monotonic() - started
    report(
        pytestconfig,
        f"\nUSB stick: plug → read-only {plugged:.1f} s, export of 1 scan {exported:.1f} s, "
        f"whole stick test {total:.1f} s (VM time added)",
    )


def test_discharging_gives_the_panels_battery_notice(van: VirtualVan) -> None:
    assert van.cable is not None
    van.cable.set(I="-4100", P="-53", TTG="615", SOC="812")
    status = van.wait_status(
        lambda s: s["power"]["shore"] is False and any(n["topic"] == "power.shore" for n in s["notices"]),
        60,
        "the on-battery notice",
    )
    assert status["power"]["soc"] == 81.2 and status["power"]["time_to_go"] == 615 * 60, status["power"]


def test_next_citizen_gives_a_verified_receipt_and_ends_the_citizens_app(van: VirtualVan) -> None:
    session = van.status()["session"]
    assert session is not None
    app = set(van.sh("pgrep -u kiosk-citizen || true").split())
    assert app, "the session app runs as kiosk-citizen"
    van.sh("/opt/kioskd/bin/kioskctl next")  # wipes this citizen's session, then opens the next citizen's
    van.wait_status(lambda s: (s["session"] or {}).get("id") not in (None, session["id"]), 180, "the next session")
    receipts = json.loads(van.sh("/opt/kioskd/bin/kioskctl --json receipts"))
    mine = next(r for r in receipts if r["session"] == session["id"])
    assert mine["verified"] is True and mine["reason"] == "next", mine
    assert all(handler["ok"] for handler in mine["handlers"]), mine["handlers"]
    assert {"app", "clipboard", "audio", "workspace"} <= {handler["name"] for handler in mine["handlers"]}
    assert not app & set(van.sh("pgrep -u kiosk-citizen || true").split()), "the first citizen's app outlived its wipe"
    if HANDOVER.get("session") == session["id"]:  # the hand-over tests ran in this session: counted, nothing typed
        inputs = next(h for h in mine["handlers"] if h["name"] == "inputs")
        assert inputs["ok"] and inputs["note"].startswith("1 handover(s)") and "1 confidential" in inputs["note"], (
            inputs
        )
        assert "kiosk" not in json.dumps(mine).replace("kiosk-citizen", ""), "a typed canary in the receipt"
        wait_heads(
            van,
            lambda a, c: page(a) and same(a, c) and band(c, TYPED) is None and band(c, TAPPED) is None,
            420,
            "the next citizen's fresh page, no canary",
        )
        status = van.status()
        assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "citizen"), status["inputs"]


def test_after_the_wipe_nothing_of_the_stick_is_mounted_and_its_own_files_are_byte_identical(van: VirtualVan) -> None:
    assert STICK, "the stick's test did not run"
    receipts = json.loads(van.sh("/opt/kioskd/bin/kioskctl --json receipts"))
    mine = next(r for r in receipts if r["session"] == STICK["session"])
    media = next(h for h in mine["handlers"] if h["name"] == "media")
    assert media["ok"] and (media["mounted"], media["exported"]) == (1, 1), media
    assert kioskd_mounts(van) == [], "a FUSE mount outlived the wipe"
    assert van.sh("pgrep -x fusefat || true").strip() == "", "a stick's driver outlived the wipe"
    image = STICK["image"]
    assert isinstance(image, Path)
    files = usb_stick.read_stick(image)
    own = {name: data for name, data in files.items() if not name.startswith("Scans ")}
    assert own == usb_stick.CANARIES  # byte for byte, nothing added, nothing lost
    copies = {name: data for name, data in files.items() if name.startswith(f"{STICK['folder']}/")}
    assert len(copies) == 1 and all(data.startswith(b"%PDF-") for data in copies.values()), list(files)


def test_kioskd_killed_in_a_session_is_restarted_and_wipes_it_before_ready(van: VirtualVan) -> None:
    if van.status()["station"]["state"] != "in_session":
        van.press()
        van.wait_status(lambda s: s["station"]["state"] == "in_session", 180, "a session")
    session = van.status()["session"]
    before = van.unit("kioskd.service", "MainPID", "NRestarts")
    killed = time.monotonic()
    van.sh(f"kill -9 {before['MainPID']}")
    # the journal of the session left open makes the new kioskd wipe it and start the station before READY=1
    van.wait_status(lambda s: s["station"]["state"] == "ready", 180, "kioskd back after the crash")
    van.marks["kill -9 → READY again"] = time.monotonic() - killed
    after = van.unit("kioskd.service", "ActiveState", "MainPID", "NRestarts")
    assert after["ActiveState"] == "active" and int(after["NRestarts"]) == int(before["NRestarts"]) + 1, after
    receipts = json.loads(van.sh("/opt/kioskd/bin/kioskctl --json receipts"))
    mine = next(r for r in receipts if r["session"] == session["id"])
    assert mine["verified"] is True and mine["reason"] == "recovery", mine
    assert "kiosk-citizen" not in van.sh("ps -o user= -C chromium || true")


def test_a_long_press_wipes_and_powers_the_van_off(van: VirtualVan) -> None:
    if van.status()["station"]["state"] == "off":
        van.press()
        van.wait_status(lambda s: s["station"]["state"] == "ready", 180, "the station ready")
    held = time.monotonic()
    van.press(hold=4.0)
    code = van.wait_exit(180)
    van.marks["long press → qemu exited"] = time.monotonic() - held
    assert code == 0
    assert "Power down" in van.serial() or "reboot: Power down" in van.serial(), van.tail()
