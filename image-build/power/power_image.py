"""The image's power services, from the vehicle profile: upsd and the NUT driver for a UPS plugged into this PC, and
UPower's own critical action, so that kioskd stays the one that ends the session, wipes and powers off.

It only writes files into build.py's extra tree; it starts nothing and never runs in the van."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# upsmon would power the PC off on the same OB LB / FSD that kioskd acts on, without wiping first: one owner.
MASKED_UNITS = ("nut-monitor.service",)
# Debian's nut-server units; nut.conf's MODE decides whether they run at all (MODE=none: they refuse).
ENABLED_UNITS = ("nut-server.service", "nut-driver-enumerator.service", "nut.target")


def nut_servers(profile: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every NUT backend of the profile (top level or a part of a combined source) whose UPS is on this PC."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("driver") == "nut" and isinstance(node.get("server"), dict):
                yield node
            for value in node.values():
                yield from walk(value)

    yield from walk(profile.get("devices", {}))


def uses_upower(profile: dict[str, Any]) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return node.get("driver") == "upower" or any(walk(value) for value in node.values())
        return False

    return walk(profile.get("devices", {}))


def packages(profile: dict[str, Any]) -> list[str]:
    """Debian packages on top of build.py's DRIVER_PACKAGES: the server side of NUT when the UPS is here."""
    return ["nut-server"] if any(True for _ in nut_servers(profile)) else []


def nut_files(profile: dict[str, Any]) -> dict[str, str]:
    """/etc/nut/* for the UPSes on this PC (empty when there is none). upsd listens on loopback only, has no users
    (kioskd's ``LIST VAR`` needs no login, and nothing may send the UPS a command), and MODE=standalone."""
    servers = list(nut_servers(profile))
    if not servers:
        return {}
    ups_conf = ["# Written by image-build/power/power_image.py from the vehicle profile.", "maxretry = 3", ""]
    listens: set[tuple[str, int]] = set()
    for node in servers:
        server = node["server"]
        name = str(node.get("ups", "ups"))
        ups_conf += [f"[{name}]", f"  driver = {server['driver']}", f"  port = {server.get('port', 'auto')}"]
        ups_conf += [f'  {key} = "{value}"' for key, value in sorted(server.get("settings", {}).items())]
        ups_conf += [f'  desc = "kioskd: {name}"', ""]
        host = str(node.get("host", "127.0.0.1"))
        listens.add(("127.0.0.1" if host == "localhost" else host, int(node.get("port", 3493))))
    upsd_conf = ["# Loopback only: the station's UPS is nobody else's business.", "MAXAGE 15"]
    upsd_conf += [f"LISTEN {host} {port}" for host, port in sorted(listens)]
    return {
        "/etc/nut/nut.conf": "# upsd and the driver run here; upsmon is masked: kioskd owns the shutdown.\n"
        "MODE=standalone\n",
        "/etc/nut/ups.conf": "\n".join(ups_conf),
        "/etc/nut/upsd.conf": "\n".join(upsd_conf) + "\n",
        "/etc/nut/upsd.users": "# No users: kioskd only reads (LIST VAR), nobody sets variables or sends commands.\n",
    }


def upower_conf(profile: dict[str, Any]) -> str:
    """/etc/UPower/UPower.conf: UPower acts only below kioskd's critical_soc (kioskd wipes and powers off first)
    and then powers off, never hibernates (a hibernation image would write the citizen's tmpfs to the disk); its
    PowerOff goes through logind, whose PrepareForShutdown makes kioskd wipe an open session first anyway."""
    policy = profile.get("power_policy", {})
    warn = float(policy.get("warn_soc", 30))
    critical = float(policy.get("critical_soc", 10))
    action = max(1, int(critical // 2))
    upower_critical = max(action + 1, int(critical) - 1)
    return "\n".join(
        [
            "# Written by image-build/power/power_image.py from the vehicle profile's [power_policy].",
            "[UPower]",
            "EnableWattsUpPro=false",
            "NoPollBatteries=false",
            "IgnoreLid=true",
            "UsePercentageForPolicy=true",
            f"PercentageLow={max(upower_critical + 1, int(warn))}",
            f"PercentageCritical={upower_critical}",
            f"PercentageAction={action}",
            "TimeLow=1200",
            "TimeCritical=300",
            "TimeAction=120",
            "CriticalPowerAction=PowerOff",
            "AllowRiskyCriticalPowerAction=false",
            "",
        ]
    )


def stage(tree: Path, profile: dict[str, Any]) -> list[str]:
    """Write the files into the extra tree; returns the image paths written (for the build's log and tests)."""
    files = nut_files(profile)
    if uses_upower(profile):
        files["/etc/UPower/UPower.conf"] = upower_conf(profile)
    for dest, text in files.items():
        target = tree / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o644)  # no secret in them (no upsd users); upsd reads them after dropping to `nut`
    written = sorted(files)
    if any(dest.startswith("/etc/nut/") for dest in files):
        units = tree / "etc/systemd/system"
        wants = units / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        for unit in MASKED_UNITS:
            link = units / unit
            link.unlink(missing_ok=True)
            os.symlink("/dev/null", link)
            written.append(f"/etc/systemd/system/{unit}")
        for unit in ENABLED_UNITS:
            link = wants / unit
            link.unlink(missing_ok=True)
            os.symlink(f"/usr/lib/systemd/system/{unit}", link)
            written.append(f"/etc/systemd/system/multi-user.target.wants/{unit}")
    return written
