"""The ``kioskd`` process and composition root: reads the profile, builds the devices, the sessions, the policies
and the station, serves the API, talks to systemd, and plays a scenario when asked. One asyncio loop; SIGTERM/SIGINT
stop it cleanly (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import json
import logging
import os
import re
import secrets
import signal
import socket
import stat
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from kioskd import __version__, notify, paths
from kioskd.api import create_app
from kioskd.bus import EventBus
from kioskd.clock import RealClock, SimClock
from kioskd.errors import KioskError, ProfileError, ScenarioError
from kioskd.hal import Clock, Devices
from kioskd.hal.loader import build_devices
from kioskd.policies import roster
from kioskd.policies.update import UpdateConfig, UpdatePolicy
from kioskd.profile import Profile, default_profile_path, load_profile
from kioskd.records.retention import Retention
from kioskd.records.store import Store
from kioskd.scenario import Scenario, load_scenario, play, start_of_day
from kioskd.session import Sessions
from kioskd.station import Station
from kioskd.station.snapshot import StationChanged

log = logging.getLogger("kioskd")

EX_CONFIG = 78  # sysexits: configuration error (systemd: RestartPreventExitStatus=78)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the daemon owns SIGTERM/SIGINT) and without its 100 ms tick, so
    an idle station really sleeps (the tick only refreshed the Date header, which this local API does not send)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self._stop.wait()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()


@dataclass
class Options:
    profile: Path
    runtime_dir: Path
    state_dir: Path
    socket: Path
    port: int | None
    scenario: Path | None
    speed: float | None
    log_level: str


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="kioskd", description="The van's station daemon.")
    parser.add_argument("--profile", type=Path, default=None, help="vehicle profile (default: installed, else sim)")
    parser.add_argument("--runtime-dir", type=Path, default=None, help="socket and session workspaces")
    parser.add_argument("--state-dir", type=Path, default=None, help="wipe journal and store")
    parser.add_argument("--socket", type=Path, default=None, help="the API's unix socket")
    parser.add_argument("--port", type=int, default=None, help="the panel's port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--scenario", type=Path, default=None, help="play a scenario on the simulated van, then exit")
    parser.add_argument("--speed", type=float, default=None, help="simulated seconds per real second")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"kioskd {__version__}")
    ns = parser.parse_args(argv)
    runtime = ns.runtime_dir or paths.runtime_dir()
    if ns.speed is not None and ns.speed <= 0:
        parser.error("--speed must be positive")
    return Options(
        profile=ns.profile or default_profile_path(),
        runtime_dir=runtime,
        state_dir=ns.state_dir or paths.state_dir(),
        socket=ns.socket or (paths.socket_path(runtime) if ns.runtime_dir is None else runtime / "kioskd.sock"),
        port=ns.port,
        scenario=ns.scenario,
        speed=ns.speed,
        log_level=ns.log_level,
    )


def _unix_socket(path: Path, group: str | None) -> socket.socket:
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: its daemon is gone
        else:
            raise KioskError("another kioskd already listens here", where=str(path), action="stop it first")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    _give_group(path, group)
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise KioskError(
            f"cannot listen on {host}:{port}: {exc.strerror}", where="api.port", action="pick another port"
        ) from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _give_group(path: Path, group: str | None) -> None:
    """Hand ``path`` to the agents' group. kioskd's user is a member of it (sysusers.d), so changing only the
    group needs no capability. No such group (a laptop): the path stays kioskd's alone."""
    if not group:
        return
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    except KeyError:
        return
    except PermissionError:
        log.warning("cannot give %s to group %s: is kioskd's user a member of it?", path, group)


def _runtime_dir(path: Path, group: str | None, app_user: bool) -> Path:
    """The runtime dir: the agents' group may reach the API socket in it; with a session app user, others may
    only traverse it (0751, no listing) to reach that user's own workspace, which its group alone may open."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o751 if app_user else 0o750)
    _give_group(path, group)
    return path


def _panel_token(path: Path, group: str | None) -> str:
    """The panel's token: the previous run's while the runtime dir lives (a restarted daemon does not log the open
    panel out; the dir is a tmpfs, so a reboot makes a new one). 0640, group ``group`` when it exists: the agents'
    desktop user reads it (``kioskctl panel``)."""
    token = ""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        token = path.read_text().strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{32,}", token):
        token = secrets.token_urlsafe(24)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    _give_group(path, group)
    os.chmod(path, 0o640)
    return token


def lgpio_workdir(runtime: Path, environ: MutableMapping[str, str] = os.environ) -> Path:
    """gpiozero's ``lgpio`` pin factory (the one a Raspberry Pi 5 needs) writes its notification pipes into
    ``LG_WD``, by default the working directory, which ``ProtectSystem=strict`` makes read-only: button, LED, shore
    relay and ignition then all fail. Unless the unit (or a technician) set it, it is a directory of the runtime dir,
    set before any backend imports lgpio."""
    path = Path(environ.setdefault("LG_WD", str(runtime / "lgpio")))
    with contextlib.suppress(OSError):  # a directory the unit made, or one we cannot make: lgpio says so itself
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:  # only when needed: a read-only state disk must not stop us
        os.chmod(path, 0o700)
    return path


def _write_file(path: Path, text: str, mode: int) -> None:
    """``text`` into ``path`` atomically, with ``mode`` exactly (not the umask's choice), never through a link."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o600)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


async def run(opts: Options, profile: Profile, scenario: Scenario | None) -> int:
    loop = asyncio.get_running_loop()
    clock: Clock
    if scenario is not None:
        clock = SimClock(opts.speed or 600.0, start_wall=start_of_day(scenario))
    elif opts.speed is not None:
        clock = SimClock(opts.speed)
    else:
        clock = RealClock()
    runtime = _runtime_dir(opts.runtime_dir, profile.api.socket_group, profile.station.app_user is not None)
    state = _private_dir(opts.state_dir)
    bus = EventBus()
    bus.bind(loop)
    lgpio_workdir(runtime)
    devices: Devices = build_devices(profile, clock, bus.publish_threadsafe, runtime)
    # the store never stops the daemon: a file it cannot read is set aside (a notice says so), a full disk keeps
    # receipts in memory; retention runs only after the pending wipe below
    store = Store(state / "kioskd.sqlite", uptime=clock.monotonic)
    store.queue_for_fleet = profile.fleet is not None
    retention = Retention(store, profile.activity, clock)
    sessions = Sessions(runtime / "sessions", state, devices, clock, profile.station)
    # the policies, in the order the station hands them each event (the recorder, last, writes what happened)
    # the A/B updates (kioskd.policies.update): their record lives on the data partition, next to the store
    updates = UpdateConfig(record=state / "update.json", downloads=state / "downloads")
    policies = roster.standard(profile, devices, clock, store, updates)
    station = Station(profile, devices, bus, clock, sessions, store=store, policies=policies)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    bus.subscribe(
        lambda ev: (
            notify.notify(f"STATUS={ev.state.mode}")
            if isinstance(ev, StationChanged) and ev.state.mode != ev.previous.mode
            else None
        ),
        StationChanged,
    )

    for kind, device in devices.all():
        try:
            await device.start()
        except KioskError as exc:
            log.error("%s did not start: %s", kind, exc)
        except Exception:
            log.exception("%s did not start", kind)

    # A session left by a crash or a power cut is wiped before anything else, and before READY=1.
    if left := sessions.pending():
        log.warning("%d session(s) left unwiped by the last run: wiping them first", len(left))
        await station.start()
    await retention.start()

    fleet = None
    if profile.fleet is not None:
        from kioskd.fleet import FleetLink  # paho-mqtt only for vans with a [fleet] section

        update = next((p for p in policies if isinstance(p, UpdatePolicy)), None)  # the office's update orders
        fleet = FleetLink(profile.fleet, station, store, clock, update=update.order if update else None)
        await fleet.start()

    token_file = runtime / "panel-token"
    token = _panel_token(token_file, profile.api.socket_group)
    unix = _unix_socket(opts.socket, profile.api.socket_group)
    port = opts.port if opts.port is not None else profile.api.port
    tcp = _tcp_socket(profile.api.host, port)
    servers = [
        (_Server(_config(create_app(station, None, stopping, fleet))), unix),
        (_Server(_config(create_app(station, token, stopping, fleet))), tcp),
    ]
    serving = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    while not all(server.started for server, _ in servers):
        if any(task.done() for task in serving):
            break
        await asyncio.sleep(0.01)
    bound_port = tcp.getsockname()[1]
    print(
        f"kioskd {__version__}: API on unix:{opts.socket} and http://{profile.api.host}:{bound_port}/ "
        f"(panel token in {token_file}); profile {opts.profile}",
        flush=True,
    )
    # where the API listens: kioskd writes it, the agents' group reads it (`kioskctl panel` of the agents' desktop
    # user, which the station's X session opens the panel with), nobody else
    _write_file(
        runtime / "api.json",
        json.dumps({"socket": str(opts.socket), "host": profile.api.host, "port": bound_port}),
        0o640,
    )
    _give_group(runtime / "api.json", profile.api.socket_group)

    if profile.station.autostart and station.mode == "off":
        with contextlib.suppress(KioskError):
            await station.start()

    notify.notify(f"READY=1\nSTATUS={station.mode}")
    watchdog = notify.watchdog_interval()
    background = [asyncio.create_task(notify.watchdog_loop(watchdog))] if watchdog else []

    code = 0
    if scenario is not None:
        play_task = asyncio.create_task(play(scenario, station, devices.simulation))
        stop_task = asyncio.create_task(stopping.wait())
        await asyncio.wait({play_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if play_task.done():
            summary = play_task.result()
            print(summary.text(), flush=True)
            print("SUMMARY " + json.dumps(summary.as_dict()), flush=True)
            code = 0 if summary.ok else 1
        else:
            play_task.cancel()
        stop_task.cancel()
    else:
        await stopping.wait()

    notify.notify("STOPPING=1")
    log.info("stopping")
    stopping.set()
    for server, _ in servers:
        server.stop()
    await asyncio.gather(*serving, return_exceptions=True)
    await station.host_shutdown("stop")  # SIGTERM with a citizen's session open: wipe it before exiting
    for task in background:
        task.cancel()
    retention.close()
    with contextlib.suppress(Exception):
        await store.save_odometer()
    if fleet is not None:
        await fleet.close()
    await station.close()
    for kind, device in devices.all():
        try:
            await device.close()
        except Exception:
            log.exception("%s did not close cleanly", kind)
    with contextlib.suppress(OSError):
        opts.socket.unlink()
    return code


def _config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)


def main(argv: list[str] | None = None) -> None:
    # Blocked in this thread before any other starts, so in all of them: a C library may set SIGPIPE back to its
    # default for the whole process (libsane's reader threads do; libsane now runs in a process of its own,
    # drivers/scanner/sane_child.py), and a write to a closed socket must then still give EPIPE, not kill the
    # station. The session app is started with it unblocked (session_app.py).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    # no file kioskd makes is writable by its group or readable by others unless it says so with an explicit mode
    # (the panel token, the socket, api.json): an inherited umask of 000 must not decide (the session app sets
    # its own, ``kioskd.session.app``)
    os.umask(0o027)
    opts = parse_args(argv)
    notify.setup_logging(opts.log_level, opts.runtime_dir / "sessions")
    try:
        profile = load_profile(opts.profile)
        scenario = load_scenario(opts.scenario) if opts.scenario else None
        code = asyncio.run(run(opts, profile, scenario))
    except (ProfileError, ScenarioError) as exc:
        print(f"kioskd: {exc}", file=sys.stderr)
        sys.exit(EX_CONFIG)
    except KioskError as exc:
        print(f"kioskd: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
