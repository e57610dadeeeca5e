"""The button's LED as the agent reads it: one pattern per mode, and a fast blink while something needs the agent.
Pure rules on a snapshot; the station sends the pattern to the button when it changes."""

from __future__ import annotations

from kioskd.hal import LedPattern
from kioskd.station.snapshot import Mode, Notice, StationState

LED: dict[Mode, LedPattern] = {
    "off": "off",
    "starting": "slow",
    "ready": "steady",
    "in_session": "double",
    "wiping": "slow",
    "travelling": "off",
    "shutting_down": "slow",
}


def needs_attention(notice: Notice) -> bool:
    """A notice the LED must show by itself (fast blink): a failed wipe, a device fault, a power warning."""
    if notice.level == "info":
        return False
    return notice.topic in ("wipe", "power") or notice.topic.startswith("device.")


def led_pattern(state: StationState) -> LedPattern:
    """The LED for a snapshot: the mode's pattern, or fast blink while something needs the agent (the station
    running: an LED blinking on a station that is off or shutting down would say it still needs something)."""
    if state.mode not in ("off", "shutting_down") and any(needs_attention(n) for n in state.notices):
        return "fast"
    return LED[state.mode]
