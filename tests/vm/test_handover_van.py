"""Handing the controls to the citizen in the virtual van (issue 23), on a boot of its own: qemu's usb-tablet (an
absolute pointer, like a touchscreen) bound to the citizen's head and a second usb-kbd, driven by QMP
input-send-event with ``device``/``head``. Their touches and keys are ignored by default, delivered to the session
app's page when handed over (the page lights a band per canary, profiles/virtual-van.toml), ignored under the
privacy curtain; in a confidential entry the agent's head shows its own curtain while the citizen's shows the page;
the button's short press ends it; after the wipe the canary is gone."""

from __future__ import annotations

import json
import time

import pytest
from PIL import Image

from tests.vm.conftest import report
from tests.vm.test_virtual_van import BOOT_TIMEOUT, GREEN, MAGENTA, H, W, same, shows_panel, wait_heads
from tests.vm.virtual_van import CURTAIN, VirtualVan, share

pytestmark = pytest.mark.integration

BLUE, RED = (0, 0, 255), (255, 0, 0)  # the page's bands: the first canary, the second
TOP = (0, 130, W, 130 + int(0.3 * 680) - 10)  # the page's "typed" band (30 vh of the 680 px window, below the panel)
BOTTOM = (0, H - int(0.2 * 680) + 10, W, H - 5)  # its "touched" band
PAGE = (0, 400, W // 2, 500), (W // 2, 400, W, 500)  # a strip of the page between the bands: magenta | green
SETTLE = 20.0  # seconds given to an input that must not arrive (TCG: a delivered one shows within a few)


def page(image: Image.Image) -> bool:
    left, right = PAGE
    return share(image, MAGENTA, left) > 0.9 and share(image, GREEN, right) > 0.9


def band(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int] | None:
    for colour in (BLUE, RED):
        if share(image, colour, box) > 0.6:
            return colour
    return None


def kioskctl(van: VirtualVan, *args: str) -> str:
    return van.sh("/opt/kioskd/bin/kioskctl " + " ".join(args))


def nothing_arrives(van: VirtualVan) -> None:
    """For SETTLE seconds neither band lights on either head."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        agent, citizen = van.screendump(0), van.screendump(1)
        assert band(citizen, TOP) is None and band(citizen, BOTTOM) is None, "an input reached the page"
        assert band(agent, TOP) is None and band(agent, BOTTOM) is None, "an input reached the page"
        time.sleep(2.0)


def test_a_session_opens_with_the_citizens_devices_found_and_disabled(van: VirtualVan) -> None:
    van.wait_active("kioskd.service", BOOT_TIMEOUT)
    van.wait_status(lambda s: s["station"]["state"] == "off", 180, "kioskd up")
    van.press()
    van.wait_status(lambda s: s["station"]["state"] == "ready", 180, "the station ready")
    van.press()
    status = van.wait_status(lambda s: s["station"]["state"] == "in_session", 180, "a session")
    wait_heads(van, lambda a, c: page(a) and same(a, c), 420, "the session app's page on both screens")
    citizen = [d for d in status["inputs"]["devices"] if d["side"] == "citizen"]
    if sorted(d["kind"] for d in citizen) != ["keyboard", "touch"]:  # what udev says of them, to fix the profile
        udev = van.sh(
            "for d in /dev/input/event*; do udevadm info -q property $d | grep -E 'DEVNAME|ID_SERIAL|ID_PATH='; done"
        )
        raise AssertionError(f"{status['inputs']}\n{udev}")
    assert not any(d["enabled"] for d in citizen), status["inputs"]
    assert any(d["side"] == "agent" for d in status["inputs"]["devices"]), "the button's X device, at least"


def test_the_citizens_touches_and_keys_are_ignored_by_default(van: VirtualVan) -> None:
    van.citizen_touch(0.5, 0.6)
    van.citizen_keys("kiosk")
    nothing_arrives(van)


def test_handed_over_the_citizens_touch_and_canary_reach_the_page_on_both_screens(
    van: VirtualVan, pytestconfig: pytest.Config
) -> None:
    asked = time.monotonic()
    kioskctl(van, "handover on")
    van.wait_status(lambda s: s["handover"]["handover"], 60, "the hand-over")
    van.marks["handover on → devices live"] = time.monotonic() - asked
    van.citizen_touch(0.5, 0.6)
    wait_heads(van, lambda a, c: band(c, BOTTOM) == BLUE and same(a, c), 120, "the citizen's touch on the page")
    van.citizen_keys("kiosk")
    wait_heads(van, lambda a, c: band(c, TOP) == BLUE and same(a, c), 120, "the citizen's canary on the page")
    status = van.status()
    touch = next(d for d in status["inputs"]["devices"] if d["kind"] == "touch")
    assert touch["enabled"] and touch["mapped_to"] == "Virtual-2", touch
    report(pytestconfig, f"\nhandover on → citizen devices live: {van.marks['handover on → devices live']:.1f} s")


def test_under_the_privacy_curtain_the_citizens_devices_are_off(van: VirtualVan) -> None:
    kioskctl(van, "privacy on")
    wait_heads(van, lambda a, c: share(c, CURTAIN) > 0.6 and shows_panel(a), 120, "the curtain")
    status = van.status()
    assert not status["handover"]["handover"], status["handover"]
    assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "citizen"), status["inputs"]
    van.citizen_keys("kiosk")  # a second canary would turn the band red
    van.citizen_touch(0.5, 0.6)
    time.sleep(SETTLE)
    kioskctl(van, "privacy off")
    _, citizen = wait_heads(van, lambda a, c: page(a) and same(a, c), 120, "the page again")
    assert band(citizen, TOP) == BLUE and band(citizen, BOTTOM) == BLUE, "an input under the curtain reached the page"


def test_confidential_entry_curtains_the_agent_while_the_citizen_types_and_the_button_ends_it(
    van: VirtualVan, pytestconfig: pytest.Config
) -> None:
    session = van.status()["session"]["id"]
    asked = time.monotonic()
    kioskctl(van, "confidential on")
    wait_heads(van, lambda a, c: share(a, CURTAIN) > 0.6 and page(c), 120, "the agent's curtain, the citizen's page")
    van.marks["confidential on → agent curtain on screen"] = time.monotonic() - asked
    status = van.status()
    assert status["handover"]["confidential"] and status["displays"]["layout"] == "confidential", status["handover"]
    assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "agent"), status["inputs"]
    van.citizen_keys("kiosk")
    agent, _ = wait_heads(van, lambda a, c: band(c, TOP) == RED, 120, "the second canary on the citizen's page")
    assert share(agent, CURTAIN) > 0.6 and band(agent, TOP) is None, "the agent saw the citizen type"
    van.press()  # the button's short press: the agent takes the controls back, no next citizen
    status = van.wait_status(lambda s: not s["handover"]["confidential"], 120, "the end of the confidential entry")
    assert status["session"]["id"] == session and status["station"]["state"] == "in_session", status["station"]
    wait_heads(van, lambda a, c: page(a) and same(a, c), 120, "the mirror again")
    report(
        pytestconfig, f"confidential on → agent curtain: {van.marks['confidential on → agent curtain on screen']:.1f} s"
    )


def test_after_the_wipe_the_canary_is_gone_and_the_receipt_counts_the_hand_overs(van: VirtualVan) -> None:
    session = van.status()["session"]["id"]
    kioskctl(van, "next")
    van.wait_status(lambda s: (s["session"] or {}).get("id") not in (None, session), 180, "the next session")
    wait_heads(
        van,
        lambda a, c: page(a) and same(a, c) and band(c, TOP) is None and band(c, BOTTOM) is None,
        420,
        "a fresh page",
    )
    status = van.status()
    assert not any(d["enabled"] for d in status["inputs"]["devices"] if d["side"] == "citizen"), status["inputs"]
    receipts = json.loads(kioskctl(van, "--json receipts"))
    mine = next(r for r in receipts if r["session"] == session)
    inputs = next(h for h in mine["handlers"] if h["name"] == "inputs")
    assert mine["verified"] and inputs["ok"] and inputs["note"].startswith("1 handover(s)"), inputs
    assert "1 confidential" in inputs["note"] and "kiosk" not in json.dumps(mine), mine
