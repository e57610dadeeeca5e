"""The stick's FUSE driver as the van runs it: kioskd is not root there but a user of its own (kiosk) with ambient
capabilities (systemd/kioskd.service), so the driver that parses the untrusted media runs as a third user
(kiosk-media; here ``nobody``, kioskd being played by ``daemon``) with CAP_SYS_ADMIN alone, no supplementary group,
no_new_privs, in a network namespace of its own, and reads a node kioskd owns and opens to it for reading only.
The real drivers on real images (exFAT on a loop device: its driver mounts fuseblk, block devices only)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.require import binary
from tests.integration.stick_images import exported, fill, make_image, require_fuse

ROOT = Path(__file__).resolve().parents[2]
KIOSK = "daemon"  # plays kioskd's user, kiosk (both exist on every Debian system)
DRIVER_USER = "nobody"  # plays kiosk-media
VAN_CAPS = ("sys_admin", "setuid", "setgid", "kill", "setpcap")  # kioskd.service's AmbientCapabilities
CAP_SYS_ADMIN = 1 << 21
CANARY = "canary-sandbox-51c2 avis d'imposition"


class Kiosk:
    """The kioskd-like process (tests/integration/media_as_kiosk.py) and its one-line JSON answers."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.pid = process.pid  # unshare and setpriv exec: the Python process keeps the pid

    def ask(self, **order: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the kioskd-like process died: {self.process.wait()}"
        answer: dict[str, Any] = json.loads(line)
        return answer


@contextlib.contextmanager
def kiosk_process(home: Path, caps: tuple[str, ...] = VAN_CAPS) -> Iterator[Kiosk]:
    """``daemon`` in a private mount namespace (kioskd.service's PrivateMounts=), a member of the driver's group
    (the image's sysusers), with ``caps`` ambient and bounding, under no_new_privs (NoNewPrivileges=)."""
    kiosk, driver = pwd.getpwnam(KIOSK), pwd.getpwnam(DRIVER_USER)
    sets = "-all," + ",".join(f"+{cap}" for cap in caps)
    config = {"fuse_user": DRIVER_USER, "runtime": str(home / "runtime")}
    command = [
        binary("unshare", "util-linux"),
        "--mount",
        "--propagation=shared",  # PrivateMounts= re-shares every mount inside (MountFlags= default)
        "--",
        binary("setpriv", "util-linux"),
        f"--reuid={kiosk.pw_uid}",
        f"--regid={kiosk.pw_gid}",
        f"--groups={driver.pw_gid}",
        f"--inh-caps={sets}",
        f"--ambient-caps={sets}",
        f"--bounding-set={sets}",
        "--no-new-privs",
        "--",
        sys.executable,
        "-m",
        "tests.integration.media_as_kiosk",
        json.dumps(config),
    ]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "TMPDIR": "/tmp", "LC_ALL": "C"}  # noqa: S108
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        yield Kiosk(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def kiosk_home() -> Iterator[Path]:
    """kioskd's folders: the workspace's media folder and a runtime dir, the kioskd-like user's, 0700, and a
    ``dev`` folder anyone may enter, where the stick's node lies (ntfs-3g reopens ``/dev/fd/N`` by the node's own
    path, /dev/sdX in the van)."""
    home = Path(tempfile.mkdtemp(prefix="kioskd-sandbox-"))
    kiosk = pwd.getpwnam(KIOSK)
    for folder in (home, home / "media", home / "runtime"):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, kiosk.pw_uid, kiosk.pw_gid)
    os.chmod(home, 0o711)
    (home / "dev").mkdir(mode=0o755)
    try:
        yield home
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(home)], check=False)


@contextlib.contextmanager
def stick(home: Path, fs: str) -> Iterator[Path]:
    """The stick's node as the image's udev rule leaves it: kioskd's user owns it, 0600 (the driver's group and
    mode are kioskd's to set). exFAT on a loop device (its driver always mounts fuseblk)."""
    image = make_image(home / "dev" / f"stick-{fs}.img", fs)
    loop = None
    if fs == "exfat":
        loop = Path(
            subprocess.run(
                [binary("losetup", "mount"), "--find", "--show", str(image)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    source = loop or image
    try:
        fill(source, fs, {"bulletin.txt": CANARY.encode()})
        os.chown(source, pwd.getpwnam(KIOSK).pw_uid, 0)
        os.chmod(source, 0o600)
        yield source
    finally:
        if loop is not None:
            subprocess.run(["losetup", "-d", str(loop)], check=False)


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def mounts_of(pid: int) -> dict[str, tuple[str, set[str]]]:
    """target → (fstype, per-mount options) in the mount namespace of ``pid``."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as f:
        rows = [line.split() for line in f]
    return {r[4]: (r[r.index("-") + 1], set(r[5].split(","))) for r in rows}


def assert_confined(pid: int, kiosk: Kiosk) -> None:
    driver = pwd.getpwnam(DRIVER_USER)
    status = status_of(pid)
    assert status["Uid"].split() == [str(driver.pw_uid)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(driver.pw_gid)] * 4, status["Gid"]
    assert status["Groups"] == "", status["Groups"]
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[name], 16) == CAP_SYS_ADMIN, f"{name} {status[name]}"
    assert status["NoNewPrivs"] == "1"
    # a network namespace of its own (neither the test's nor kioskd's), kioskd's mount namespace (its mount is there)
    net = os.readlink(f"/proc/{pid}/ns/net")
    assert net not in (os.readlink("/proc/self/ns/net"), os.readlink(f"/proc/{kiosk.pid}/ns/net"))
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{kiosk.pid}/ns/mnt")


def gone(pid: int) -> bool:
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("fs", ["vfat", "ntfs", "exfat"])
def test_in_the_van_the_sticks_driver_runs_as_its_own_user_with_cap_sys_admin_alone_and_no_network(fs: str) -> None:
    require_fuse()
    driver = pwd.getpwnam(DRIVER_USER)
    with kiosk_home() as home, stick(home, fs) as source, kiosk_process(home) as kiosk:
        assert kiosk.ask(do="plug", source=str(source))["supported"]
        target = home / "media" / "cle-1"
        answer = kiosk.ask(do="mount", target=str(target))
        assert "error" not in answer, answer
        (pid,) = answer["pids"]
        assert_confined(pid, kiosk)
        fstype, options = mounts_of(kiosk.pid)[str(target)]
        assert fstype.startswith("fuse") and {"ro", "nosuid", "nodev", "noexec"} <= options, (fstype, options)
        assert str(target) not in mounts_of(os.getpid()), "the stick's mount leaked out of kioskd's namespace"
        assert kiosk.ask(do="read", path=str(target / "bulletin.txt"))["data"] == CANARY
        # the node: kioskd's, opened to the driver's group for reading only
        node = os.stat(source)
        assert (node.st_uid, node.st_gid, node.st_mode & 0o7777) == (pwd.getpwnam(KIOSK).pw_uid, driver.pw_gid, 0o640)
        scan = home / "scan-01.pdf"
        scan.write_bytes(b"%PDF-1.4 sandbox scan")
        os.chown(scan, pwd.getpwnam(KIOSK).pw_uid, -1)
        result = kiosk.ask(do="export", files=[str(scan)])
        assert (result["files"], result["fault"]) == (1, None), result
        (again,) = result["pids"]  # read-only again, by a new driver, as confined
        assert again != pid and gone(pid)
        assert_confined(again, kiosk)
        assert "ro" in mounts_of(kiosk.pid)[str(target)][1]
        assert os.stat(source).st_mode & 0o7777 == 0o640, "the node stayed writable after the export"
        kiosk.ask(do="eject")
        assert gone(again), "the driver outlived the eject"
        assert str(target) not in mounts_of(kiosk.pid)
        assert exported(source, fs, "Scans") == {f"{result['folder']}/scan-01.pdf": b"%PDF-1.4 sandbox scan"}


def test_a_kioskd_that_cannot_narrow_the_drivers_capabilities_mounts_nothing() -> None:
    # without CAP_SETPCAP setpriv leaves the driver's bounding set as kioskd's, silently (seen): kioskd refuses
    require_fuse()
    without_setpcap = ("sys_admin", "setuid", "setgid", "kill")
    with kiosk_home() as home, stick(home, "vfat") as source, kiosk_process(home, caps=without_setpcap) as kiosk:
        assert kiosk.ask(do="plug", source=str(source))["supported"]
        answer = kiosk.ask(do="mount", target=str(home / "media" / "cle-1"))
        assert "CAP_SETPCAP" in answer.get("error", ""), answer
        assert "CAP_SETPCAP" in answer["action"]
        assert not [m for m in mounts_of(kiosk.pid) if m.startswith(str(home))]
        assert os.stat(source).st_mode & 0o7777 == 0o600, "the node was opened to a driver that never ran"
