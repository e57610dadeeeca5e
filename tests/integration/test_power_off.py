"""End of day on a van with logind (python-dbusmock's template on a private bus): the PC is powered off only after
the last citizen's wipe was verified, and the wipe held a shutdown inhibitor while it ran."""

from __future__ import annotations

import json
from pathlib import Path

from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import start_daemon
from tests.integration.power_services import private_bus
from tests.integration.test_host_logind import LogindMock
from tests.integration.test_wipe import write_canaries


def test_power_off_comes_after_the_verified_wipe_and_the_wipe_held_an_inhibitor(tmp_path: Path) -> None:
    with private_bus() as bus:
        logind = LogindMock(bus)
        profile = tmp_path / "van.toml"
        profile.write_text(
            SIM_PROFILE.read_text().replace(
                '[host]\ndriver = "sim"', f'[host]\ndriver = "logind"\nbus_address = "{bus.address}"'
            )
        )
        daemon = start_daemon(tmp_path, "--profile", str(profile))
        try:
            session = daemon.open_session()
            workspace = Path(session["workspace"])
            write_canaries(workspace, "kc-poweroff")
            # logind's PowerOff, as the mock runs it, looks at the van at the moment it is called
            seen = tmp_path / "seen-at-poweroff.json"
            journal = daemon.state / "wipe-journal"
            logind.object.AddMethod(
                "org.freedesktop.login1.Manager",
                "PowerOff",
                "b",
                "",
                f"import json, os; open({str(seen)!r}, 'w').write(json.dumps("
                f"{{'workspace': os.path.exists({str(workspace)!r}), 'journal': os.listdir({str(journal)!r}),"
                f" 'inhibitors': len(self.ListInhibitors())}}))",
                dbus_interface="org.freedesktop.DBus.Mock",
            )
            daemon.ctl("end-of-day")
            receipt = json.loads(daemon.ctl("--json", "receipts").stdout)[0]
            assert receipt["session"] == session["id"] and receipt["verified"]
            log = logind.object.GetCalls(dbus_interface="org.freedesktop.DBus.Mock")
            calls = [(float(at), str(name)) for at, name, _ in log]
            names = [name for _, name in calls]
            assert "Inhibit" in names and "PowerOff" in names
            assert names.index("Inhibit") < names.index("PowerOff")
            at_power_off = json.loads(seen.read_text())
            assert at_power_off == {"workspace": False, "journal": [], "inhibitors": 0}, "PowerOff came too early"
        finally:
            daemon.stop()
            logind.stop()
