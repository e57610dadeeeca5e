"""How ModemManager's properties become the HAL's ``ModemState`` (no bus: the mapping alone)."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.modem.modemmanager import M3GPP, MODEM, SIGNAL, modem_state, technology_of


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
