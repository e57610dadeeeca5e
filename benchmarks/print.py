"""Submit-to-completed time of kioskd's CUPS backend next to CUPS's own ``lp``, on 20 one-page PDFs sent to the same
private cupsd + ippeveprinter queue (the integration tests' service, with the van's cupsd.conf), alternating which
goes first. Prints both medians and the median ratio; asserts nothing.

kioskd's time ends when its JobStateChanged(completed) reaches the event loop, with the backend's default poll
periods; lp's when a client polling CUPS every 20 ms sees the job finished (a best case for the peer)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The private CUPS is the integration tests' own, so the benchmark measures what the tests check.
sys.path.insert(0, str(ROOT))

from drivers.printer.cups import CupsPrinter  # noqa: E402
from kioskd.clock import RealClock  # noqa: E402
from kioskd.hal import DriverContext, Event, JobStateChanged  # noqa: E402
from tests.integration.cups_service import CupsService, one_page_pdf, running_cups  # noqa: E402

DOCUMENTS = 20
PEER_POLL = 0.02  # seconds
TIMEOUT = 60.0


class Completions:
    """Completion times of the backend's jobs, stamped on the event loop as the events arrive."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.done: dict[int, asyncio.Future[float]] = {}

    def emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self._arrived, event)

    def _arrived(self, event: Event) -> None:
        if isinstance(event, JobStateChanged) and event.job.state == "completed":
            self.future(event.job.id).set_result(time.perf_counter())

    def future(self, job_id: int) -> asyncio.Future[float]:
        return self.done.setdefault(job_id, self.loop.create_future())


async def through_kioskd(printer: CupsPrinter, completions: Completions, pdf: Path, n: int) -> float:
    start = time.perf_counter()
    job_id = await printer.submit(pdf, title=f"kiosk-bench-{n}", session="bench")
    end = await asyncio.wait_for(completions.future(job_id), TIMEOUT)
    return end - start


def through_lp(service: CupsService, pdf: Path, n: int) -> float:
    conn = service.connection()
    start = time.perf_counter()
    job_id = service.lp(pdf, f"lp-bench-{n}")
    while job_id in conn.getJobs(which_jobs="not-completed", requested_attributes=["job-id"]):
        if time.perf_counter() - start > TIMEOUT:
            raise TimeoutError(f"lp job {job_id} did not finish")
        time.sleep(PEER_POLL)
    return time.perf_counter() - start


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-print-") as tmp:
        base = Path(tmp)
        pdf = base / "page.pdf"
        pdf.write_bytes(one_page_pdf("One page for the benchmark"))
        with running_cups(base / "service") as service:
            completions = Completions()
            ctx = DriverContext(
                kind="printer",
                driver="cups",
                options={"queue": service.queue, "server": str(service.local_socket), "spool": str(service.spool)},
                clock=RealClock(),
                emit=completions.emit,
                runtime_dir=base / "run",
            )
            printer = CupsPrinter(ctx)
            await printer.start()
            try:
                await through_kioskd(printer, completions, pdf, 0)  # warm-up: connection, subscription, PPD cache
                await asyncio.to_thread(through_lp, service, pdf, 0)
                ours: list[float] = []
                theirs: list[float] = []
                for n in range(1, DOCUMENTS + 1):
                    if n % 2:
                        ours.append(await through_kioskd(printer, completions, pdf, n))
                        theirs.append(await asyncio.to_thread(through_lp, service, pdf, n))
                    else:
                        theirs.append(await asyncio.to_thread(through_lp, service, pdf, n))
                        ours.append(await through_kioskd(printer, completions, pdf, n))
                await printer.purge_jobs("bench")
            finally:
                await printer.close()
            printed = len(service.printed())

    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(f"print: {DOCUMENTS} one-page PDFs each way, alternating ({printed} sheets printed in all)")
    print(f"  kioskd CupsPrinter  median {statistics.median(ours):.3f} s  (min {min(ours):.3f}, max {max(ours):.3f})")
    print(
        f"  lp                  median {statistics.median(theirs):.3f} s"
        f"  (min {min(theirs):.3f}, max {max(theirs):.3f})"
    )
    print(f"  median ratio kioskd/lp {statistics.median(ratios):.3f}  (target <= 1.2)")


if __name__ == "__main__":
    asyncio.run(main())
