"""A shutdown started by anyone wipes first: logind's PrepareForShutdown (python-dbusmock's logind template on a
private bus) with a citizen's session open, the delay inhibitor held for the whole session and released only after
the verified wipe; and SIGTERM to a real kioskd with a session open wipes before it exits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dbus
import dbusmock

from drivers.host.logind import LogindHost
from kioskd.hal import ShutdownPrepared
from kioskd.profile import SIM_PROFILE
from tests.integration.daemon_process import Daemon, start_daemon
from tests.integration.power_services import Recorder, private_bus, wait_until
from tests.integration.test_host_logind import MANAGER, LogindMock, host_context
from tests.integration.test_wipe import write_canaries

SESSION_LOCK = ("shutdown:sleep", "kioskd", "a citizen's session is open", "delay")


def prepare_for_shutdown(logind: LogindMock, active: bool) -> None:
    logind.object.EmitSignal(
        MANAGER, "PrepareForShutdown", "b", [dbus.Boolean(active)], dbus_interface=dbusmock.MOCK_IFACE
    )


async def test_logind_host_tells_the_station_when_the_machine_prepares_to_shut_down(tmp_path: Path) -> None:
    with private_bus() as bus:
        logind = LogindMock(bus)
        ctx = host_context(tmp_path, {"bus_address": bus.address})
        events = ctx.emit
        assert isinstance(events, Recorder)
        host = LogindHost(ctx)
        await host.start()
        try:
            prepare_for_shutdown(logind, False)  # a shutdown cancelled (or the resume): nothing to do
            prepare_for_shutdown(logind, True)
            await wait_until(lambda: bool(events.of(ShutdownPrepared)), "ShutdownPrepared")
            assert events.of(ShutdownPrepared) == [ShutdownPrepared()]
        finally:
            await host.close()
            logind.stop()


def _logind_profile(tmp_path: Path, address: str) -> Path:
    profile = tmp_path / "van.toml"
    profile.write_text(
        SIM_PROFILE.read_text().replace(
            '[host]\ndriver = "sim"', f'[host]\ndriver = "logind"\nbus_address = "{address}"'
        )
    )
    return profile


def test_a_shutdown_started_by_someone_else_waits_for_the_wipe_of_the_open_session(tmp_path: Path) -> None:
    with private_bus() as bus:
        logind = LogindMock(bus)
        daemon = start_daemon(tmp_path, "--profile", str(_logind_profile(tmp_path, bus.address)))
        try:
            session = daemon.open_session()
            workspace = Path(session["workspace"])
            write_canaries(workspace, "kc-prepare")
            # the inhibitor is there for the whole session, before any wipe starts
            assert logind.inhibitors() == [SESSION_LOCK]
            time.sleep(0.5)
            assert logind.inhibitors() == [SESSION_LOCK]
            prepare_for_shutdown(logind, True)  # upsmon, UPower or `systemctl poweroff` at the console
            deadline = time.monotonic() + 60
            while logind.inhibitors():
                # released only once nothing of the citizen is left
                assert time.monotonic() < deadline, f"the inhibitor is still held: {daemon.log.read_text()}"
                time.sleep(0.01)
            assert not workspace.exists()
            assert list((daemon.state / "wipe-journal").iterdir()) == []
            receipt = json.loads(daemon.ctl("--json", "receipts").stdout)[0]
            assert receipt["session"] == session["id"] and receipt["verified"]
            assert daemon.status()["station"]["state"] == "off"  # type: ignore[index]
            assert logind.calls("PowerOff") == []  # someone else is powering off: kioskd does not ask again
        finally:
            daemon.stop()
            logind.stop()


def _journal(daemon: Daemon) -> list[str]:
    return sorted(path.name for path in (daemon.state / "wipe-journal").iterdir())


def test_sigterm_with_a_session_open_wipes_before_exiting(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--profile", str(SIM_PROFILE))
    try:
        session = daemon.open_session()
        workspace = Path(session["workspace"])
        write_canaries(workspace, "kc-sigterm")
        assert _journal(daemon) != []  # the session is journalled while it is open
        assert daemon.stop() == 0
        assert not workspace.exists()
        assert _journal(daemon) == [], "the session was left for the next start to wipe"
    finally:
        daemon.kill()
