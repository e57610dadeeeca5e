"""Vehicle profiles: TOML files validated into typed configuration.

A broken profile stops the daemon with a message naming the file, the key and what was expected. Backend options
are validated by the backend itself (``DriverContext.parse_options``) with the same kind of message."""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kioskd.errors import ProfileError
from kioskd.hal import DEVICE_KINDS, DeviceKind, MediaOptions, ScanMode

INSTALLED_PROFILE = Path("/etc/kioskd/profile.toml")
SIM_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "sim.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vehicle(_Section):
    id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="the van's id in fleet reports"
    )
    name: str = Field(min_length=1, description="the name agents and the office know the van by")


class StationConfig(_Section):
    hold_time: float = Field(3.0, ge=0.5, le=30, description="seconds of a long press (end of day)")
    autostart: bool = Field(False, description="start the station when the daemon starts, without a press")
    session_length: float = Field(1800, gt=0, description="seconds a typical citizen needs")
    idle_timeout: float = Field(900, gt=0, description="seconds without activity before a session is wiped")
    idle_warning: float = Field(60, ge=0, description="seconds of countdown shown before the idle wipe")
    workspace: Literal["auto", "tmpfs", "directory"] = Field(
        "auto", description="a private tmpfs per citizen (needs CAP_SYS_ADMIN), a directory, or tmpfs when allowed"
    )
    workspace_size: str = Field("1G", pattern=r"^[0-9]+[kKmMgG]?$", description="size limit of a session's tmpfs")
    app: list[str] = Field(default_factory=list, description="the session app's command line")
    app_user: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="the user the session app runs as (kiosk-citizen in the image; none: kioskd's own user)",
    )
    app_grace: float = Field(5.0, ge=0, le=120, description="seconds between SIGTERM and SIGKILL of the app")
    print_grace: float = Field(60.0, ge=0, description="seconds unfinished print jobs get at the wipe")

    @model_validator(mode="after")
    def _warning_fits(self) -> StationConfig:
        if self.idle_warning >= self.idle_timeout:
            raise ValueError("idle_warning must be shorter than idle_timeout")
        return self


class PowerPolicyConfig(_Section):
    warn_soc: float = Field(30, ge=0, le=100, description="state of charge (%) below which agents are warned")
    critical_soc: float = Field(
        10, ge=0, le=100, description="state of charge (%): end the session, wipe and power off"
    )
    hysteresis: float = Field(3, ge=0, le=20, description="percentage points to climb back before clearing")
    shore_debounce: float = Field(5.0, ge=0, le=120, description="seconds a shore change must last")
    wipe_reserve: float = Field(300, ge=0, description="seconds of battery kept to finish a wipe")
    discharge_window: float = Field(600, gt=0, description="seconds of samples for the time-to-go estimate")
    sample_period: float = Field(60, gt=0, description="seconds between power samples kept for the panel")
    silence_timeout: float = Field(
        60,
        gt=0,
        description="seconds a power part may stay silent (no data) before the shore counts as unplugged, "
        "with a notice naming the part",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PowerPolicyConfig:
        if self.critical_soc >= self.warn_soc:
            raise ValueError("critical_soc must be below warn_soc")
        return self


class AtlasStop(_Section):
    """A stop of the tour; with coordinates, the modem's GPS names it without the agent."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$", description="as the agents say it")
    latitude: float | None = Field(None, ge=-90, le=90, description="degrees (WGS 84); none: the agent names it")
    longitude: float | None = Field(None, ge=-180, le=180, description="degrees (WGS 84)")
    radius: float = Field(300, gt=0, le=20_000, description="metres around the point that count as this stop")
    cells: tuple[str, ...] = Field(
        (), description='serving cells ("MCCMNC-LAC-CID", hex) that name this stop when GPS has no fix'
    )
    uplink: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="the uplink known to work here: preferred at this stop, taken on arrival (a dual-SIM modem "
        "switches to its SIM slot)",
    )


class ConnectivityConfig(_Section):
    """``[connectivity]``: the reachability probe, the recovery of a stuck modem and the signal atlas."""

    probe: Literal["modem", "http", "dns"] = Field("modem", description="modem: ask the backend (the simulated van)")
    probe_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", description="for probe = http")
    probe_status: int = Field(204, ge=100, le=599, description="the status the probe URL answers when all is well")
    probe_host: str | None = Field(None, min_length=1, max_length=253, description="for probe = dns")
    probe_timeout: float = Field(5.0, gt=0, le=60, description="seconds before a probe counts as failed")
    period: float = Field(60, ge=5, le=3600, description="seconds between probes (the one poll, on purpose)")
    recover_after: float = Field(300, ge=30, description="seconds registered without working data before recovery")
    backoff_initial: float = Field(120, ge=30, description="seconds after the first recovery step before the next")
    backoff_max: float = Field(1800, ge=30, description="longest wait between two recovery steps")
    weak_signal: int = Field(20, ge=0, le=100, description="signal quality (%) below which the agent is warned")
    sample_period: float = Field(300, ge=10, description="seconds between signal samples kept for the atlas")
    atlas_weeks: float = Field(6, gt=0, le=52, description="weeks of samples the atlas ranks by default")
    switch_back_after: float = Field(
        300, ge=0, le=86_400, description="seconds a preferred uplink must pass its probes before traffic goes back"
    )
    visio_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="the office's server for the video-call check (GET sends, POST takes visio_bytes); none: off",
    )
    visio_bytes: int = Field(250_000, ge=10_000, le=2_000_000, description="bytes each way per video-call check")
    visio_period: float = Field(1800, ge=60, description="seconds between two video-call checks of an uplink at a stop")
    visio_timeout: float = Field(20, gt=0, le=120, description="seconds a video-call check may take at most")
    visio_min_kbps: float = Field(1000, gt=0, description="kbit/s needed each way for a video call")
    visio_max_rtt: float = Field(0.25, gt=0, description="seconds of round trip a video call tolerates")
    visio_max_jitter: float = Field(0.05, gt=0, description="seconds of jitter a video call tolerates")
    stops: tuple[AtlasStop, ...] = Field((), description="the tour's stops; with coordinates the GPS names them")

    @model_validator(mode="after")
    def _probe_target(self) -> ConnectivityConfig:
        if self.probe == "http" and self.probe_url is None:
            raise ValueError("probe = 'http' needs probe_url")
        if self.probe == "dns" and self.probe_host is None:
            raise ValueError("probe = 'dns' needs probe_host")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must not be shorter than backoff_initial")
        names = [stop.name for stop in self.stops]
        if len(set(names)) != len(names):
            raise ValueError(f"stop names must be unique, got {', '.join(names)}")
        return self


class ApiConfig(_Section):
    host: Literal["127.0.0.1", "::1", "localhost"] = Field("127.0.0.1", description="the panel's loopback address")
    port: int = Field(8765, ge=0, le=65535, description="0 picks a free port")
    socket_group: str | None = Field("kiosk-agent", description="group allowed on the API socket")


class UploadDestination(_Section):
    """A site scans are uploaded to, and the largest file it accepts (administrations differ: 1 MB, 4 MB …)."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    max_bytes: int = Field(ge=50_000, le=100_000_000, description="largest PDF the site accepts, in bytes")


class ScanningConfig(_Section):
    """``[scanning]``: what a scan job asks of the scanner and the size budgets of the upload destinations.

    Defined here rather than in ``kioskd.policies.scanning_pipeline`` so that reading a profile never imports OpenCV."""

    resolution: int = Field(300, ge=150, le=600, description="dpi asked of the scanner")
    mode: ScanMode = Field("color", description="colour or grey, unless the agent chooses")
    destinations: tuple[UploadDestination, ...] = Field(
        (UploadDestination(name="standard", max_bytes=2_000_000),),
        description="upload sites: name and max_bytes (the PDF is fitted to it)",
    )
    default_destination: str | None = Field(None, description="picked unless the agent chooses (None: the first)")

    @model_validator(mode="after")
    def _destinations_known(self) -> ScanningConfig:
        names = [destination.name for destination in self.destinations]
        if not names:
            raise ValueError("at least one upload destination is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"destination names must be unique, got {', '.join(names)}")
        if self.default_destination is not None and self.default_destination not in names:
            raise ValueError(f"default_destination {self.default_destination!r} is not one of {', '.join(names)}")
        return self

    def destination(self, name: str | None = None) -> UploadDestination:
        """The destination called ``name`` (the default one when None); ``KeyError`` when there is none."""
        wanted = name or self.default_destination or self.destinations[0].name
        for destination in self.destinations:
            if destination.name == wanted:
                return destination
        raise KeyError(wanted)


class ActivityConfig(_Section):
    """``[activity]``: the office's figures (visits per stop, week, hour) and how long they are kept."""

    retention_months: int = Field(13, ge=1, le=120, description="months of activity figures and receipts kept")
    timezone: str = Field("Europe/Paris", description="the local time of the dates and hours in the figures")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Paris, America/Cayenne)") from None
        return value


class HandoverConfig(_Section):
    """``[handover]``: handing the controls to the citizen ("Main au citoyen", "Saisie confidentielle")."""

    confidential_timeout: float = Field(
        300,
        ge=10,
        le=3600,
        description="seconds after which a confidential entry ends by itself (the agent's screen and devices back)",
    )


class FleetConfig(_Section):
    """``[fleet]``: the link to the office's MQTT broker (absent: no fleet link). Defined here so that reading a
    profile never imports paho-mqtt."""

    region: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$", description="topic level per region")
    host: str = Field(min_length=1, description="the broker's name (as in its certificate) or address")
    port: int = Field(8883, ge=1, le=65535, description="the broker's port (8883: MQTT over TLS)")
    tls: bool = Field(True, description="false only for a broker on a trusted network")
    ca_file: Path | None = Field(None, description="the broker's CA (PEM); None: the system's CAs")
    cert_file: Path | None = Field(None, description="this van's client certificate (PEM), if the broker asks one")
    key_file: Path | None = Field(None, description="the key of cert_file (PEM)")
    username: str | None = Field(None, description="the van's login at the broker (its vehicle id suits ACLs)")
    password_file: Path | None = Field(None, description="a file holding the password (never in the profile)")
    topic_prefix: str = Field("kioskd", pattern=r"^[a-z0-9_-]+$", description="first topic level")
    health_period: float = Field(60, ge=1, description="seconds: at most one health message per period")
    keepalive: int = Field(60, ge=5, le=3600, description="seconds of MQTT keepalive (the Last Will's delay)")
    retry_min: float = Field(5, gt=0, description="seconds before the first reconnection attempt")
    retry_max: float = Field(300, gt=0, description="seconds between attempts at most (doubling up to it)")
    window: int = Field(20, ge=1, le=1000, description="queued messages in flight before the broker's PUBACK")
    commands: bool = Field(
        True,
        description="answer status-report, health and ping from <prefix>/…/cmd, and take the office's update orders "
        "(URL + sha256)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FleetConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if (self.cert_file is not None or self.ca_file is not None) and not self.tls:
            raise ValueError("ca_file and cert_file need tls = true")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        if self.retry_min > self.retry_max:
            raise ValueError("retry_min must not exceed retry_max")
        return self


class DeviceSection(BaseModel):
    """``[devices.<kind>]``: a backend name and its own options (checked by the backend)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    driver: str = Field(min_length=1, pattern=r"^[a-z0-9_+-]+$")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MediaConfig(MediaOptions):
    """``[media]``: the citizen's USB sticks: the backend (``fuse``: udev + FUSE drivers; ``sim``) and its options."""

    driver: str = Field(default="fuse", min_length=1, pattern=r"^[a-z0-9_+-]+$")

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"driver"})


class Profile(_Section):
    vehicle: Vehicle
    station: StationConfig = StationConfig()
    power_policy: PowerPolicyConfig = PowerPolicyConfig()
    connectivity: ConnectivityConfig = ConnectivityConfig()
    api: ApiConfig = ApiConfig()
    scanning: ScanningConfig = ScanningConfig()
    activity: ActivityConfig = ActivityConfig()
    handover: HandoverConfig = HandoverConfig()
    fleet: FleetConfig | None = None  # no [fleet] section: no fleet link
    devices: dict[DeviceKind, DeviceSection]
    media: MediaConfig = MediaConfig()  # no [media] section: USB sticks through the FUSE drivers, defaults
    host: DeviceSection = DeviceSection(driver="logind")  # power off and inhibitor locks; "sim" in the simulator
    source: str = "<memory>"

    @field_validator("devices")
    @classmethod
    def _all_devices(cls, devices: dict[DeviceKind, DeviceSection]) -> dict[DeviceKind, DeviceSection]:
        # the citizen's input devices are optional: a van without any has the citizen watch only
        devices = {"inputs": DeviceSection(driver="none"), **devices}
        missing = [kind for kind in DEVICE_KINDS if kind not in devices]
        if missing:
            raise ValueError(f"every device kind needs a [devices.<kind>] table; missing: {', '.join(missing)}")
        return devices


def default_profile_path() -> Path:
    """The installed vehicle profile, else the simulated van."""
    env = os.environ.get("KIOSKD_PROFILE")
    if env:
        return Path(env)
    return INSTALLED_PROFILE if INSTALLED_PROFILE.exists() else SIM_PROFILE


def _explain(error: dict[str, Any]) -> tuple[str, str]:
    """(dotted key, what was expected) from one pydantic error, in a technician's words."""
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) if loc else "(top level)"
    kind = error["type"]
    if kind == "missing":
        return key, "missing: this key is required"
    if kind == "extra_forbidden":
        return key, "unknown key (misspelt?)"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return key, f"expected one of {expected}, got {error.get('input')!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "input" in error and kind not in ("value_error", "assertion_error"):
        return key, f"{message[0].lower()}{message[1:]}, got {error['input']!r}"
    return key, message


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate a profile already read from TOML; ``source`` names it in errors."""
    try:
        return Profile.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = [_explain(dict(e)) for e in exc.errors()]
        first_key, first_what = problems[0]
        more = "; ".join(f"{k}: {w}" for k, w in problems[1:])
        raise ProfileError(
            first_what + (f" (also {more})" if more else ""),
            where=f"{source}: {first_key}",
            action="fix the profile and restart kioskd",
            problems=problems,
        ) from None


def load_profile(path: Path) -> Profile:
    """Read and validate the profile at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read the profile: {exc.strerror}", where=str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProfileError("not UTF-8 text", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"not valid TOML: {exc}", where=str(path)) from None
    return parse_profile(data, str(path))
