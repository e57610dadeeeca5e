"""How ModemManager's properties become the HAL's ``ModemState`` (no bus: the mapping alone)."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.modem.modemmanager import M3GPP, MODEM, SIGNAL, cell_of, modem_state, technology_of
from drivers.network.networkmanager import NetworkManagerOptions, UplinkOptions, connection_settings
from kioskd.cli.render import uplink_lines


def props(**modem: Any) -> dict[str, dict[str, Any]]:
    return {MODEM: {"State": 11, "Sim": "/org/freedesktop/ModemManager1/SIM/0", "SignalQuality": [55, True], **modem}}


@pytest.mark.parametrize(
    ("access", "technology"),
    [
        (0, "none"),
        (1 << 1, "gsm"),
        (1 << 8, "umts"),
        (1 << 14, "lte"),
        (1 << 16, "lte"),
        ((1 << 14) | (1 << 15), "5gnr"),
    ],
)
def test_access_technologies_map_to_the_best_one_in_use(access: int, technology: str) -> None:
    assert technology_of(access) == technology


def test_without_a_3gpp_interface_the_modem_state_says_whether_it_is_registered() -> None:
    assert modem_state(props(State=8)).registration == "home"
    assert modem_state(props(State=7)).registration == "searching"
    assert modem_state(props(State=3)).registration == "idle"


def test_3gpp_registration_wins_and_sms_only_counts_as_registered() -> None:
    state = modem_state({**props(), M3GPP: {"RegistrationState": 7, "OperatorName": ""}})
    assert state.registration == "roaming" and state.operator is None


def test_sim_missing_locked_or_ready() -> None:
    assert modem_state(props(Sim="/")).sim == "missing"
    assert modem_state(props(State=-1, StateFailedReason=2)).sim == "missing"
    assert modem_state(props(State=2)).sim == "locked"
    assert modem_state(props(State=6, UnlockRequired=4)).sim == "locked"  # PUK
    assert modem_state(props(UnlockRequired=1)).sim == "ready"


def test_5g_figures_on_5g_lte_figures_otherwise_and_nan_means_unknown() -> None:
    signal = {"Lte": {"rsrp": -97.25, "rsrq": float("nan"), "snr": 9.0}, "Nr5g": {"rsrp": -88.0, "snr": 12.0}}
    lte = modem_state({**props(AccessTechnologies=1 << 14), SIGNAL: signal})
    assert (lte.rsrp, lte.rsrq, lte.sinr) == (-97.2, None, 9.0)
    nr = modem_state({**props(AccessTechnologies=1 << 15), SIGNAL: signal})
    assert (nr.rsrp, nr.sinr, nr.connected, nr.signal) == (-88.0, 12.0, True, 55)


def test_the_serving_cell_reads_as_mccmnc_area_and_cell_with_the_tac_standing_in_for_an_empty_lac() -> None:
    assert cell_of("208,10,00A1,3c4d5e") == "20810-00A1-3C4D5E"
    assert cell_of("208,01,0000,3C4D5E,1A2B") == "20801-1A2B-3C4D5E"  # LTE: no LAC, the TAC says the area
    assert cell_of("208,01,,") is None and cell_of(None) is None


def test_networkmanager_connections_carry_the_profiles_apn_pin_interface_and_metric() -> None:
    gsm = UplinkOptions(name="sfr", kind="gsm", apn="sl2sfr", interface="cdc-wdm1")
    settings = connection_settings(gsm, 200, "0000")
    assert settings["connection"]["id"].value == "kioskd-sfr"
    assert (settings["gsm"]["apn"].value, settings["gsm"]["pin"].value) == ("sl2sfr", "0000")
    assert settings["ipv4"]["route-metric"].value == settings["ipv6"]["route-metric"].value == 200
    assert "autoconnect" not in settings["connection"]  # NetworkManager's default (on) without its mock's quirk
    again = connection_settings(gsm, 100, None)
    assert again["connection"]["uuid"].value == settings["connection"]["uuid"].value  # the same connection
    with pytest.raises(ValueError, match="apn"):
        UplinkOptions(name="x", kind="gsm")


def test_a_dual_sim_modem_says_which_slot_is_in_use_a_single_sim_one_says_nothing() -> None:
    two = {"SimSlots": ["/org/freedesktop/ModemManager1/SIM/1", "/org/freedesktop/ModemManager1/SIM/2"]}
    assert modem_state({MODEM: {**two, "PrimarySimSlot": 2}}).sim_slot == 2
    assert modem_state({MODEM: {"SimSlots": [], "PrimarySimSlot": 0}}).sim_slot is None
    assert modem_state({MODEM: {}}).sim_slot is None


def test_a_sim_slot_uplink_comes_up_on_its_own_sim_and_two_cannot_share_a_slot() -> None:
    sfr = UplinkOptions(name="sfr", apn="sl2sfr", modem="8", sim_slot=2, operator_id="20810")
    assert connection_settings(sfr, 100, None)["gsm"]["sim-operator-id"].value == "20810"
    assert "sim-operator-id" not in connection_settings(UplinkOptions(name="o", apn="orange"), 100, None)["gsm"]
    with pytest.raises(ValueError, match="for gsm uplinks"):
        UplinkOptions(name="mairie", kind="ethernet", sim_slot=1)
    with pytest.raises(ValueError, match="same SIM slot"):
        NetworkManagerOptions(uplinks=(sfr, UplinkOptions(name="sfr2", apn="x", modem="8", sim_slot=2)))
    NetworkManagerOptions(uplinks=(sfr, UplinkOptions(name="orange", apn="orange", modem="8", sim_slot=1)))


def test_kioskctl_status_has_a_line_per_uplink_only_with_several() -> None:
    modem = {"uplinks": [{"name": "orange", "kind": "gsm", "interface": "wwan0", "operator": "Orange F",
                          "signal": 40, "technology": "lte", "standby": False, "sim_slot": None}]}  # fmt: skip
    connectivity = {"uplink": "orange", "uplinks": [{"name": "orange", "outcome": "ok"}]}
    assert uplink_lines(modem, connectivity, "fr") == []  # the network line says it all
    modem["uplinks"].append({"name": "mairie", "kind": "ethernet", "interface": None, "operator": None,
                             "signal": None, "technology": "none", "standby": False, "sim_slot": None})  # fmt: skip
    connectivity["uplinks"].append({"name": "mairie", "outcome": "wrong-status"})
    assert uplink_lines(modem, connectivity, "fr") == [
        "orange · Orange F · wwan0 · LTE 40 % · ✓ répond · en service",
        "mairie · - · - · ethernet · ✗ réponse inattendue (portail ?)",
    ]
    assert uplink_lines(modem, connectivity, "en")[1] == "mairie · - · - · ethernet · ✗ unexpected answer (portal?)"
