"""The image's polkit rule for the Internet link (issue 21), evaluated by Node.js as polkitd's JavaScript engine
would: ``kiosk`` gets exactly the NetworkManager and ModemManager actions kioskd calls, nobody else anything."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

RULE = Path(__file__).resolve().parents[2] / "image-build" / "polkit-kioskd-network.rules"
HARNESS = """
const rules = [];
const polkit = {Result: {YES: "yes", NO: "no", NOT_HANDLED: "not_handled"}, addRule: (f) => rules.push(f)};
eval(require("fs").readFileSync(process.argv[1], "utf8"));
const asks = JSON.parse(process.argv[2]);
console.log(JSON.stringify(asks.map(([user, id]) => rules[0]({id: id}, {user: user}))));
"""
GRANTED = (
    "org.freedesktop.NetworkManager.settings.modify.system",
    "org.freedesktop.NetworkManager.network-control",
    "org.freedesktop.ModemManager1.Device.Control",
)
REFUSED = (
    "org.freedesktop.NetworkManager.enable-disable-network",
    "org.freedesktop.NetworkManager.wifi.share.open",
    "org.freedesktop.NetworkManager.settings.modify.hostname",
    "org.freedesktop.ModemManager1.Messaging",
    "org.freedesktop.ModemManager1.Location",
    "org.freedesktop.login1.reboot",
)


def verdicts(asks: list[tuple[str, str]]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to evaluate the polkit rule: apt-get install nodejs")
    out = subprocess.run([node, "-e", HARNESS, str(RULE), json.dumps(asks)], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def test_kiosk_gets_exactly_the_network_and_modem_actions_it_calls() -> None:
    assert verdicts([("kiosk", action) for action in GRANTED]) == ["yes"] * len(GRANTED)
    assert verdicts([("kiosk", action) for action in REFUSED]) == ["not_handled"] * len(REFUSED)


def test_other_users_are_left_to_polkits_defaults() -> None:
    asks = [(user, action) for user in ("agent", "kiosk-citizen", "root") for action in GRANTED]
    assert set(verdicts(asks)) == {"not_handled"}
