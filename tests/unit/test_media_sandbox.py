"""The stick driver's sandbox as built, without running it: the command kioskd starts each FUSE driver with (as
root, in the van, as a developer's own user), the confinement check on a process that is not confined, and the
van's image and unit giving kioskd what that sandbox needs (tests/integration/test_media_sandbox.py runs it)."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from drivers.media import fuse
from drivers.media.fuse import CAP_SYS_ADMIN, SANDBOX_CAPS, FuseMedia, sandboxed, unconfined_reason
from kioskd.clock import ManualClock
from kioskd.hal import DriverContext
from tests.image_stage import staged

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ["fusefat", "-o", "ro,nosuid,nodev,noexec,allow_other", "/dev/fd/5", "/tmp/stage"]  # noqa: S108


def test_in_the_van_the_driver_gets_its_own_user_no_group_no_network_and_cap_sys_admin_alone() -> None:
    assert sandboxed(DRIVER, "sandbox", (998, 997)) == [
        "unshare",
        "--net",
        "--",
        "setpriv",
        "--reuid=998",
        "--regid=997",
        "--clear-groups",
        "--inh-caps=-all,+sys_admin",
        "--ambient-caps=-all,+sys_admin",
        "--bounding-set=-all,+sys_admin",
        "--no-new-privs",
        "--",
        *DRIVER,
    ]


def test_as_root_the_driver_gets_no_capability_and_may_still_run_the_setuid_fusermount() -> None:
    command = sandboxed(DRIVER, "root", (65534, 65534))
    assert command[:4] == ["unshare", "--net", "--", "setpriv"] and command[-len(DRIVER) :] == DRIVER
    assert "--no-new-privs" not in command  # it would keep fusermount from mounting
    assert not any(arg.startswith(("--ambient-caps", "--inh-caps")) for arg in command)


def test_a_kioskd_with_no_capability_runs_the_driver_as_itself() -> None:
    assert sandboxed(DRIVER, "own", None) == DRIVER


def _media(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, user: str = "nobody") -> FuseMedia:
    ctx = DriverContext("media", "fuse", {"udev": False, "fuse_user": user}, ManualClock(), lambda e: None, tmp_path)
    media = FuseMedia(ctx)
    monkeypatch.setattr(media, "_sandbox", lambda: "sandbox")
    return media


@pytest.mark.parametrize("fs", ["vfat", "exfat", "ntfs"])
def test_every_drivers_command_in_the_van_is_sandboxed_read_only_nosuid_nodev_noexec(
    fs: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    command = _media(monkeypatch, tmp_path)._command(fs, Path("/dev/fd/5"), Path("/stage"), False, 1234)
    driver = command.index(fuse.DRIVERS[fs])
    assert command[:driver] == sandboxed([], "sandbox", (nobody.pw_uid, nobody.pw_gid))
    options = command[driver + 2].split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(options) and "rw" not in options
    if fs != "vfat":  # the files are kioskd's and the session app's group's, nobody else's
        assert {f"uid={os.geteuid()}", "gid=1234", "umask=007"} <= set(options)


def test_the_driver_may_never_be_root_nor_kioskds_own_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    own = pwd.getpwuid(os.geteuid()).pw_name
    for user, said in (("root", "not root nor kioskd"), (own, "not root nor kioskd"), ("no-such-kioskd", "no user")):
        with pytest.raises(fuse.DeviceError, match=said):
            _media(monkeypatch, tmp_path, user)._command("vfat", Path("/dev/fd/5"), Path("/stage"), False, None)


def test_a_process_that_is_not_confined_is_told_apart() -> None:
    assert unconfined_reason([], 65534) == "no driver process found"
    assert unconfined_reason([os.getpid()], pwd.getpwnam("nobody").pw_uid) == "not the driver's user"
    own = unconfined_reason([os.getpid()], os.getuid())
    assert own is not None  # this test process has supplementary groups, other capabilities or no no_new_privs


def test_the_vans_unit_gives_kioskd_every_capability_the_sandbox_needs_and_the_image_the_drivers_user() -> None:
    unit = (ROOT / "systemd" / "kioskd.service").read_text()
    for line in ("CapabilityBoundingSet", "AmbientCapabilities"):
        found = re.search(rf"(?m)^{line}=(.*)$", unit)
        assert found and {"CAP_SYS_ADMIN", *SANDBOX_CAPS} <= set(found.group(1).split()), line
    assert "NoNewPrivileges=yes" in unit and CAP_SYS_ADMIN == 21
    sysusers = (ROOT / "image-build" / "kioskd-image.sysusers").read_text().splitlines()
    assert any(re.match(r"u kiosk-media -", line) for line in sysusers)
    assert "m kiosk kiosk-media" in sysusers  # kioskd opens its staging folder to the driver's group
    rule = (ROOT / "image-build" / "media" / "71-kioskd-media.rules").read_text()
    assert 'OWNER="kiosk", GROUP="kiosk-media", MODE="0640"' in rule
    assert 'fuse_user = "kiosk-media"' in (ROOT / "profiles" / "virtual-van.toml").read_text()


def test_the_image_installs_the_sticks_udev_rule_after_kioskds_own(tmp_path: Path) -> None:
    tree = staged(tmp_path, ROOT / "profiles" / "virtual-van.toml")
    rules = sorted(p.name for p in (tree / "usr/lib/udev/rules.d").iterdir())
    assert rules.index("70-kioskd.rules") < rules.index("71-kioskd-media.rules")
