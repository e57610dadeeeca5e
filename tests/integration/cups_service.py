"""A private CUPS for the integration tests and the print benchmark: cupsd with the van's own configuration
(image-build/cups/cupsd-kiosk.conf) and ippeveprinter as the physical printer, in one temporary tree on loopback.

It never uses the system's CUPS (/etc/cups, /var/spool/cups, port 631) and stops every process it started by PID,
even when the test fails. It works outside pytest too (benchmarks/print.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cups

from tests.integration import require

ROOT = Path(__file__).resolve().parents[2]
KIOSK_CUPSD_CONF = ROOT / "image-build" / "cups" / "cupsd-kiosk.conf"
APT = "cups cups-ipp-utils cups-client dbus"

# Where this cupsd keeps everything: the test greps this whole tree for a citizen's bytes after a wipe.
CUPS_FILES_CONF = """\
ServerRoot {tree}/etc
RequestRoot {tree}/spool
TempDir {tree}/spool/tmp
CacheDir {tree}/cache
StateDir {tree}/state
AccessLog {tree}/log/access_log
ErrorLog {tree}/log/error_log
PageLog {tree}/log/page_log
Printcap {tree}/state/printcap
ServerBin /usr/lib/cups
DataDir /usr/share/cups
SystemGroup root
FileDevice No
"""

# The printer's engine: ippeveprinter runs it once per job with the document. A jam is one-shot (the agent clears it
# and the next job prints); a good job also reports the jam gone, as a real printer does once the sheet is out.
ENGINE = """\
#!/bin/sh
if [ -e "{jam}" ]; then
  rm -f "{jam}"
  echo "STATE: +media-jam-error" >&2
  echo "ERROR: paper jam" >&2
  exit 1
fi
cp "$1" "{paper}/$$-$(basename "$1")"
echo "STATE: -media-jam-error" >&2
exit 0
"""

A4 = "iso_a4_210x297mm"


def one_page_pdf(text: str) -> bytes:
    """A valid one-page A4 PDF showing ``text`` (ASCII), uncompressed so the text is findable byte for byte."""
    stream = b"BT /F1 24 Tf 72 760 Td (" + text.encode("ascii") + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0
) -> None:
    """Wait until ``ready()`` is true; fails early when ``proc`` died (its output, next to the tree, says why)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout} s")
        time.sleep(0.02)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class CupsService:
    """cupsd + ippeveprinter + the private D-Bus system bus ippeveprinter needs for DNS-SD.

    Everything lives in ``root``, a fresh directory that CUPS's backends (user lp) can traverse, which pytest's
    tmp_path is not; at ``stop`` it moves into ``base`` for a post-mortem. ``tree`` is everything cupsd writes
    (config, spool, cache, state, logs); ``paper`` holds each document the printer printed, outside the tree, as
    paper would be. ``stock_retention`` replaces the van's ``PreserveJobFiles No``/``PreserveJobHistory No`` by
    stock CUPS's defaults (a day of files, all the history). ``formats`` is what the printer prints itself
    (ippeveprinter -f); ``with_queue`` False leaves CUPS without a queue, as a freshly flashed van is."""

    base: Path
    queue: str = "kiosk"
    stock_retention: bool = False
    formats: str = "application/pdf,image/pwg-raster,image/urf,image/jpeg"
    with_queue: bool = True
    cups_port: int = field(default_factory=free_port)
    ipp_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    root: Path = Path()
    _bin: dict[str, str] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------------------------------------- places
    @property
    def tree(self) -> Path:
        return self.root / "cups"

    @property
    def spool(self) -> Path:
        return self.tree / "spool"

    @property
    def paper(self) -> Path:
        return self.root / "paper"

    @property
    def printer_dir(self) -> Path:
        return self.root / "printer"

    @property
    def bus(self) -> Path:
        return self.root / "bus"

    @property
    def local_socket(self) -> Path:
        """cupsd's local socket: clients on it are authenticated by their uid, like kioskd on /run/cups/cups.sock."""
        return self.root / "cups.sock"

    @property
    def device_uri(self) -> str:
        return f"ipp://localhost:{self.ipp_port}/ipp/print"

    # ----------------------------------------------------------------------------------------------- life
    def start(self) -> None:
        binaries = {
            name: require.binary(name, APT)
            for name in ("cupsd", "ippeveprinter", "lpadmin", "cupsenable", "cupsdisable", "lp", "dbus-daemon")
        }
        self._bin = binaries
        # A short path (unix sockets take 108 bytes at most) that user lp may traverse.
        self.root = Path(tempfile.mkdtemp(prefix="kcups-"))
        self.root.chmod(0o755)
        for sub in ("etc/ppd", "etc/ssl", "spool/tmp", "cache", "state", "log"):
            (self.tree / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.tree / "spool/tmp", 0o1777)
        for d in (self.paper, self.printer_dir / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        (self.tree / "etc/cupsd.conf").write_text(self._cupsd_conf())
        (self.tree / "etc/cups-files.conf").write_text(CUPS_FILES_CONF.format(tree=self.tree))
        engine = self.printer_dir / "engine.sh"
        engine.write_text(ENGINE.format(jam=self.printer_dir / "jam", paper=self.paper))
        engine.chmod(0o755)
        try:
            self._start_bus()
            self.start_printer()
            self.start_cupsd()
            if self.with_queue:
                self._add_queue()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything this service started, by PID, newest first."""
        for name in reversed(list(self.procs)):
            self._stop(name)
        if self.root != Path() and self.root.exists():
            self.base.mkdir(parents=True, exist_ok=True)
            shutil.move(self.root, self.base / self.root.name)

    def _cupsd_conf(self) -> str:
        """The van's cupsd.conf with this service's own listeners instead of the system's."""
        lines = [line for line in KIOSK_CUPSD_CONF.read_text().splitlines() if not line.startswith("Listen ")]
        lines += [f"Listen 127.0.0.1:{self.cups_port}", f"Listen {self.local_socket}"]
        conf = "\n".join(lines) + "\n"
        if self.stock_retention:
            conf = conf.replace("PreserveJobFiles No", "PreserveJobFiles 86400")
            conf = conf.replace("PreserveJobHistory No", "PreserveJobHistory Yes")
        return conf

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def _stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _start_bus(self) -> None:
        argv = [
            self._bin["dbus-daemon"], "--session", "--nofork", "--nopidfile", "--print-address",
            f"--address=unix:path={self.bus}",
        ]  # fmt: skip
        # The address is printed once the bus accepts clients; the socket file alone appears earlier, and an
        # ippeveprinter started then fails with "Unable to initialize DNS-SD".
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs["dbus"] = proc
        assert proc.stdout is not None
        with proc.stdout:
            if not proc.stdout.readline():
                raise RuntimeError(f"dbus-daemon exited with {proc.wait()}")

    def start_printer(self) -> None:
        """ippeveprinter on its own port; started again after ``kill_printer`` it is the same printer."""
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.bus}"}
        argv = [
            self._bin["ippeveprinter"],
            "-p", str(self.ipp_port),
            "-n", "localhost",  # binds IPv4 and IPv6; 127.0.0.1 leaves no IPv6 listener and fails
            "-r", "off",
            "-d", str(self.printer_dir / "spool"),
            "-c", str(self.printer_dir / "engine.sh"),
            "-f", self.formats,
            "-M", "Kiosk", "-m", "Test Printer",
            "KioskPrinter",
        ]  # fmt: skip
        proc = self._spawn("printer", argv, env)
        _wait("ippeveprinter", lambda: _listening(self.ipp_port), proc)

    def kill_printer(self) -> None:
        """The printer loses power: killed at once, no goodbye."""
        self._stop("printer", signal.SIGKILL)

    def start_cupsd(self) -> None:
        conf, files = self.tree / "etc/cupsd.conf", self.tree / "etc/cups-files.conf"
        proc = self._spawn("cupsd", [self._bin["cupsd"], "-f", "-c", str(conf), "-s", str(files)])
        _wait("cupsd", lambda: _listening(self.cups_port) and self.local_socket.exists(), proc)

    def stop_cupsd(self) -> None:
        self._stop("cupsd")

    def _add_queue(self, device_uri: str | None = None) -> None:
        self.admin("lpadmin", "-p", self.queue, "-E", "-v", device_uri or self.device_uri, "-m", "everywhere")
        # lpadmin returns before cupsd has built the IPP Everywhere PPD; a job sent earlier fails with not-found.
        _wait("the queue's PPD", (self.tree / "etc/ppd" / f"{self.queue}.ppd").exists, self.procs["cupsd"])

    def add_queue_through(self, device_uri: str) -> None:
        """The queue, for a printer reached at ``device_uri`` (a proxy in front of ippeveprinter)."""
        self._add_queue(device_uri)

    # ----------------------------------------------------------------------------------------------- acts
    def admin(self, tool: str, *args: str) -> None:
        """An administration command through the local socket, where root is authenticated as an administrator."""
        subprocess.run([self._bin[tool], "-h", str(self.local_socket), *args], check=True, capture_output=True)

    def pause_queue(self) -> None:
        self.admin("cupsdisable", self.queue)

    def resume_queue(self) -> None:
        self.admin("cupsenable", self.queue)

    def set_paper(self, sheets: int) -> None:
        """Load ``sheets`` in both trays through ippeveprinter's /media page (0 empties them)."""
        query = "&".join(
            f"size{tray}={A4}&type{tray}=stationery&level{tray}={sheets}" for tray in (1, 3)
        )  # trays 1 (main) and 3 (by-pass); a tray left out of the form counts as empty
        with urllib.request.urlopen(f"http://localhost:{self.ipp_port}/media?{query}", timeout=5) as answer:
            answer.read()

    def jam_next_job(self) -> None:
        (self.printer_dir / "jam").touch()

    def connection(self) -> cups.Connection:
        """A pycups connection on the local socket, as root (sees every job's private values).

        libcups keeps its server per thread: this sets it for the calling thread only."""
        cups.setServer(str(self.local_socket))
        return cups.Connection()

    def printed(self) -> list[Path]:
        """The documents the printer printed, oldest first."""
        return sorted(self.paper.iterdir(), key=lambda p: p.stat().st_mtime_ns)

    def lp(self, document: Path, title: str) -> int:
        """Print with CUPS's own ``lp`` (raw, like the backend), through the loopback port; returns the job id."""
        out = subprocess.run(
            [self._bin["lp"], "-h", f"127.0.0.1:{self.cups_port}", "-d", self.queue, "-t", title, "-o", "raw",
             str(document)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        # "request id is kiosk-12 (1 file(s))"
        return int(out.split()[3].rsplit("-", 1)[1])


@contextlib.contextmanager
def running_cups(
    base: Path, *, stock_retention: bool = False, formats: str | None = None, with_queue: bool = True
) -> Iterator[CupsService]:
    service = CupsService(base, stock_retention=stock_retention, with_queue=with_queue)
    if formats is not None:
        service.formats = formats
    service.start()
    try:
        yield service
    finally:
        service.stop()
