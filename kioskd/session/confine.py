"""The session app's launcher: it confines the app to its session, then becomes the app. Run by kioskd (as root or
with CAP_SYS_ADMIN/CAP_SETUID/CAP_SETGID) as ``python -I -S confine.py SPEC -- COMMAND…``; it must stay standard
library only (no kioskd import: it runs before, and instead of, anything else), and it never logs a path.

Python's ``subprocess`` changes the user *before* ``preexec_fn``, so namespaces cannot be set up there: this small
program does it in order, then execs the app. A separate program rather than util-linux's ``unshare`` + ``setpriv``
because the order matters (the X server's socket and the workspace must be bound back *after* the fresh /tmp, the
capabilities dropped *after* the mounts) and each step's failure must be told to kioskd in one line, not a shell.

What it does, in a new mount and IPC namespace of its own:

1. every mount is made a slave (nothing mounted here leaks to the PC; an unmount of the workspace by kioskd reaches
   here) and then **read-only, recursively** (``mount_setattr``; one remount per mount on older kernels): this is
   what makes the list below complete by construction. The app user may write nowhere on the PC's own mounts,
   including places no list would think of (a 1777 folder in an image-build cache, a file left 0666, a folder
   owned by ``nobody``). Only /proc keeps its write bit (its files are per process: Chromium's sandbox writes its
   own ``uid_map``; the rest is root's);
2. fresh, private tmpfs mounts (``nosuid,nodev``) on the places programs expect to write: ``PRIVATE_PLACES``
   (/tmp, /var/tmp, /dev/shm, /run/lock, /run/user), and a fresh mqueue file system on /dev/mqueue; they live in
   this namespace only and vanish with its last process, which the wipe kills (and verifies);
3. the workspace bound back writable at its own path (it may lie under one of those places: the tests' runtime
   dir is under /tmp), and the one X socket the app's ``DISPLAY`` names (/tmp/.X11-unix/X<n>) bound back alone in
   a read-only folder of its own: the app reaches its display and no other X server of the PC (a test's, a second
   seat's);
4. System V IPC (shared memory, semaphores, message queues) and POSIX message queues are the new IPC
   namespace's: private, gone with it;
5. the kernel's user keyring of the app user (the one store a process of that uid could leave for the next one
   outside any file system) is cleared, and the app gets a fresh session keyring;
6. groups, gid, uid become the app user's; every capability set is emptied (effective, permitted, inheritable,
   ambient: a kiosk→kiosk-citizen switch keeps them otherwise), ``no_new_privs`` is set (a setuid ``crontab`` or
   ``at`` cannot schedule anything for later), umask 007; then exec.

So the writable places outside the workspace are: the tmpfs mounts of step 2 and the mqueue of step 4 (all private
to the session), /proc/<own pid>/… (per process), devices (/dev/null, /dev/tty, /dev/pts/…: they hold nothing) and
sockets (their services hold no citizen data, or have their own wipe handler: CUPS). ``tests/integration/
test_wipe_attacks.py::test_every_place_the_app_user_can_write_is_in_its_session`` walks the file system as the app
user from inside a session and checks that list on the machine it runs on.

Without the right to do this (a laptop: kioskd not root), the app runs unconfined, and the first line on the status
descriptor says so (``unconfined <reason>``); kioskd logs it and tells the agent. A failure after the namespace
exists (``failed <reason>``) stops here: an app half-confined is not started."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import sys
import warnings  # noqa: F401 (os.execvp imports it lazily: as the app user, the interpreter's files may be closed)

PRIVATE_PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/run/user")  # noqa: S108 (made private here)
X11_SOCKETS = "/tmp/.X11-unix"  # noqa: S108

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 19
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 0x1, 0x8000, -100
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = 1, 7, -4, -5
_SYSCALLS = {  # (mount_setattr, keyctl, capset): mount_setattr has one number on every architecture since 5.12
    "x86_64": (442, 250, 126),
    "aarch64": (442, 219, 91),
    "armv7l": (442, 311, 185),
}

_libc = ctypes.CDLL(None, use_errno=True)


class Refused(Exception):
    """A step the kernel refused: its name and errno's words (never a path)."""


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, step: str) -> int:
    if result < 0:
        raise Refused(f"{step}: {os.strerror(ctypes.get_errno())}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None, step: str) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        step,
    )


def _syscalls() -> tuple[int, int, int] | None:
    return _SYSCALLS.get(platform.machine())


def _setattr(path: str, attr_set: int, attr_clr: int, recursive: bool) -> bool:
    """mount_setattr(2) on the mount at ``path``; False when this kernel has none (before 5.12)."""
    numbers = _syscalls()
    if numbers is None:
        return False
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _libc.syscall(numbers[0], AT_FDCWD, path.encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0 and ctypes.get_errno() == 38:  # ENOSYS
        return False
    _check(result, "mount_setattr")
    return True


def _mounts() -> list[tuple[str, set[str]]]:
    """Every mount point of this namespace with its per-mount options, from /proc/self/mountinfo."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            found.append((point, set(fields[5].split(","))))
    return found


def _read_only_everywhere() -> None:
    """Step 1: every mount of the namespace read-only, /proc excepted."""
    if _setattr("/", MOUNT_ATTR_RDONLY, 0, recursive=True):
        _setattr("/proc", 0, MOUNT_ATTR_RDONLY, recursive=False)  # its own submounts (binfmt_misc) stay as set
        return
    for point, options in _mounts():  # an older kernel: one bind remount per mount, keeping its own flags
        if point == "/proc" or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= (MS_NOSUID if "nosuid" in options else 0) | (MS_NODEV if "nodev" in options else 0)
        flags |= MS_NOEXEC if "noexec" in options else 0
        try:
            _mount(None, point, None, flags, None, "remount read-only")
        except Refused:
            if os.path.ismount(point):
                raise
            # hidden under a later mount on the same path: not reachable, the one on top is done in its turn


def _is_folder(path: str) -> bool:
    try:
        return os.path.isdir(path) and not os.path.islink(path)
    except OSError:
        return False


def _make_path(path: str) -> None:
    """The mount point ``path``, each missing folder 0755 whatever kioskd's umask (the app user traverses them)."""
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        if not os.path.lexists(current):
            os.mkdir(current)
            os.chmod(current, 0o755)


def _bind_back(fd: int, path: str, writable: bool) -> None:
    """Step 3: the folder held open as ``fd`` mounted again at ``path`` (creating the mount point in a fresh tmpfs
    when it is now hidden there), writable or read-only."""
    _make_path(path)
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND, None, "bind")
    if writable:
        if not _setattr(path, 0, MOUNT_ATTR_RDONLY, recursive=False):
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, None, "remount writable")
    elif not _setattr(path, MOUNT_ATTR_RDONLY, 0, recursive=False):
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None, "remount read-only")


def _program_roots(command: list[str]) -> list[str]:
    """Where the app's program lives when that is inside a place made private (a checkout under /tmp running its
    tests, the venv's interpreter with it): the top folder below that place, bound back read-only so the fresh
    tmpfs does not hide the program itself. In the image nothing is installed there and this is empty."""
    roots: list[str] = []
    found = shutil.which(command[0]) if command else None
    for path in {found, os.path.realpath(found)} if found else set():
        for place in PRIVATE_PLACES:
            if path.startswith(place + "/"):
                top = place + "/" + path[len(place) + 1 :].split("/", 1)[0]
                if top not in roots and _is_folder(top):
                    roots.append(top)
    return roots


def display_socket(display: str) -> str | None:
    """The local socket an X ``DISPLAY`` (``:0``, ``:0.0``, ``unix:1``) connects to; None for a display over TCP
    (``host:0``) or none at all."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if host not in ("", "unix") or not number.isdigit():
        return None
    return f"{X11_SOCKETS}/X{number}"


def _bind_display(fd: int, socket: str) -> None:
    """Step 3 for X: a fresh /tmp/.X11-unix (in the private /tmp) holding only the display's socket, bound onto an
    empty file there, then the folder made read-only."""
    _make_path(X11_SOCKETS)
    os.close(os.open(socket, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    _mount(X11_SOCKETS, X11_SOCKETS, None, MS_BIND, None, "bind the X socket folder")  # a mount of its own: only
    _mount(f"/proc/self/fd/{fd}", socket, None, MS_BIND, None, "bind the display's socket")  # it goes read-only
    if not _setattr(X11_SOCKETS, MOUNT_ATTR_RDONLY, 0, recursive=False):
        _mount(None, X11_SOCKETS, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None, "read-only")


def confine(workspace: str, size: str, command: list[str] | None = None, display: str = "") -> None:
    """Steps 1 to 4 (the caller has unshared the namespaces)."""
    _mount(None, "/", None, MS_REC | MS_SLAVE, None, "make slave")
    keep = [
        (os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), root, False)
        for root in _program_roots(command or [])
    ]
    keep.append((os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC), workspace, True))
    socket = display_socket(display)
    x11 = None
    if socket is not None and os.path.exists(socket):
        x11 = os.open(socket, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    _read_only_everywhere()
    for place in PRIVATE_PLACES:
        if _is_folder(place):
            _mount("kiosk-private", place, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777", "tmpfs")
    if _is_folder("/dev/mqueue"):
        _mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None, "mqueue")
    for fd, path, writable in keep:
        _bind_back(fd, path, writable)
        os.close(fd)
    if x11 is not None and socket is not None:
        _bind_display(x11, socket)
        os.close(x11)


def _keyrings() -> None:
    """Step 5, as the app user: its user keyrings emptied, a new session keyring."""
    numbers = _syscalls()
    if numbers is None:
        return
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        _libc.syscall(numbers[1], KEYCTL_CLEAR, ring)  # a user without keyrings yet: nothing to clear
    _libc.syscall(numbers[1], KEYCTL_JOIN_SESSION_KEYRING, None)


def become(uid: int, gid: int) -> None:
    """Step 6: the app user, with no capability left and no way to gain one."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _keyrings()
    numbers = _syscalls()
    if numbers is not None:
        header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set
        data = (_CapData * 2)()
        _check(_libc.syscall(numbers[2], ctypes.byref(header), ctypes.byref(data)), "capset")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.umask(0o007)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    command = argv[argv.index("--") + 1 :]
    status = int(spec["status_fd"])
    os.set_inheritable(status, False)  # closes at exec: kioskd reads the status lines up to that end

    def tell(line: str) -> None:
        os.write(status, (line + "\n").encode())

    confined = "confined"
    try:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    except Refused as exc:
        confined = f"unconfined {exc}"  # no right to: a laptop; nothing is half-done
    else:
        try:
            confine(spec["workspace"], spec["size"], command, os.environ.get("DISPLAY", ""))
        except (Refused, OSError) as exc:
            tell(f"failed {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
            return 126
    try:
        if spec.get("uid") is not None:
            become(int(spec["uid"]), int(spec["gid"]))
        else:
            os.umask(int(spec.get("umask", 0o077)))
        os.chdir(spec["cwd"])
    except (Refused, OSError) as exc:
        tell(f"failed {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
        return 126
    tell(confined)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        tell(f"failed exec: {exc.strerror}")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
