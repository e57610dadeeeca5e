"""The scan pipeline on synthetic scans (known skew, known page corners): deskew and crop accuracy, whitening, PDFs
that fit their budget or a clear refusal, file naming, and the ``[scanning]`` profile section."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pikepdf
import pytest
from pydantic import ValidationError

from kioskd.clock import ManualClock
from kioskd.hal import RawPage, ScanMode, ScannerState, ScanRequest, ScanResult
from kioskd.messages import both
from kioskd.policies import scanning_pipeline as scanning
from kioskd.policies.scanning_pipeline import (
    BudgetExceeded,
    clean_page,
    fit_pdf,
    ladder,
    save_pdf,
    scan_name,
    scan_to_pdf,
)
from kioskd.profile import SIM_PROFILE, ScanningConfig, load_profile

A4_MM = (210.0, 297.0)
A4_POINTS = (595.3, 841.9)
PAPER, INK, BED = 238, 25, 35


def a4_pixels(dpi: int) -> tuple[int, int]:
    return round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)


def skewed_scan(
    angle: float, *, dpi: int = 300, colour: bool = False, seed: int = 0, lines: int = 40
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """A synthetic A4 scan: slightly grey paper with a frame 5 mm in from its edges and lines of text, turned
    ``angle`` degrees counter-clockwise (as seen) on a dark, noisy scanner bed, off-centre. Returns the scan and the
    page's true corners (top-left, top-right, bottom-right, bottom-left) in the scan's pixels."""
    rng = np.random.default_rng(seed)
    width, height = a4_pixels(dpi)
    scale = dpi / 300
    page = np.full((height, width), PAPER, np.uint8)
    inset = round(5 / 25.4 * dpi)
    cv2.rectangle(page, (inset, inset), (width - inset, height - inset), INK, max(1, round(4 * scale)))
    step = (height - 2 * round(250 * scale)) // lines
    for row in range(lines):
        words = f"Demande n. {rng.integers(10**6):06d}  Nom Prenom  {rng.integers(1, 99)} rue des Lilas"
        origin = (round(220 * scale), round(300 * scale) + row * step)
        cv2.putText(page, words, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale, INK, max(1, round(3 * scale)))
    margin = round(20 / 25.4 * dpi)
    bed = rng.integers(BED - 8, BED + 8, (height + 2 * margin, width + 2 * margin), dtype=np.uint8)
    bed[margin : margin + height, margin : margin + width] = page
    centre = (bed.shape[1] / 2 + rng.uniform(-margin / 3, margin / 3), bed.shape[0] / 2 + rng.uniform(-20, 20))
    turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
    scan = cv2.warpAffine(bed, turn, (bed.shape[1], bed.shape[0]), flags=cv2.INTER_LINEAR, borderValue=BED)
    # Pixel centres are at integers: the paper's outer edges lie half a pixel outside its first and last pixels.
    edges = np.array([(-0.5, -0.5), (width - 0.5, -0.5), (width - 0.5, height - 0.5), (-0.5, height - 0.5)])
    corners = (edges + margin) @ turn[:, :2].T + turn[:, 2]
    if colour:
        scan = cv2.cvtColor(scan, cv2.COLOR_GRAY2RGB)
    return np.asarray(scan, dtype=np.uint8), corners


def clean_pages(count: int, *, dpi: int = 300, colour: bool = True) -> list[scanning.CleanPage]:
    mode: ScanMode = "color" if colour else "gray"
    return [
        clean_page(RawPage(skewed_scan(2.0 * i - 3, dpi=dpi, colour=colour, seed=i)[0], dpi, mode))
        for i in range(count)
    ]


# --------------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("angle", [-10.0, -7.5, -4.2, -1.0, -0.3, 0.0, 0.25, 1.7, 5.0, 8.8, 10.0])
def test_skew_is_recovered_within_a_third_of_a_degree_and_the_crop_within_one_percent(angle: float) -> None:
    scan, corners = skewed_scan(angle, seed=round(angle * 10) + 200)
    page = clean_page(RawPage(scan, 300, "gray"))
    width, height = a4_pixels(300)
    assert page.found
    assert abs(page.skew - angle) <= 0.3
    found = np.array(page.corners)
    assert np.all(np.abs(found[:, 0] - corners[:, 0]) <= 0.01 * width)
    assert np.all(np.abs(found[:, 1] - corners[:, 1]) <= 0.01 * height)
    out_height, out_width = page.pixels.shape
    assert abs(out_width - width) <= 0.01 * width and abs(out_height - height) <= 0.01 * height


@pytest.mark.parametrize("angle", [-6.0, 3.0])
def test_cropped_page_keeps_its_frame_and_no_background(angle: float) -> None:
    page = clean_page(RawPage(skewed_scan(angle, seed=7)[0], 300, "gray")).pixels
    band = round(10 / 25.4 * 300)  # the frame is drawn 5 mm in from the paper's edges
    edge = 3
    # The outermost pixels are paper (white), not the dark bed …
    for strip in (page[:edge], page[-edge:], page[:, :edge], page[:, -edge:]):
        assert strip.mean() > 250
    # … and the frame near each edge is still in the picture, upright: a dark line along the whole side.
    for strip in (page[:band], page[-band:], page[:, :band].T, page[:, -band:].T):
        darkest_row = (strip < 128).mean(axis=1).max()
        assert darkest_row > 0.9


def test_colour_scan_stays_colour_and_grey_stays_grey() -> None:
    scan, _ = skewed_scan(2.0, dpi=150, colour=True)
    assert clean_page(RawPage(scan, 150, "color")).pixels.ndim == 3
    grey, _ = skewed_scan(2.0, dpi=150)
    assert clean_page(RawPage(grey, 150, "gray")).pixels.ndim == 2


def test_a_scan_without_dark_background_is_kept_whole() -> None:
    # A flatbed with its white lid closed: no edge to find, so nothing is cut or turned.
    width, height = a4_pixels(150)
    lid = np.full((height, width), 235, np.uint8)
    cv2.putText(lid, "Avis d'imposition", (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 2, INK, 3)
    page = clean_page(RawPage(lid, 150, "gray"))
    assert not page.found and page.skew == 0.0
    assert page.pixels.shape == lid.shape


def test_whitening_turns_shaded_tinted_paper_white_and_keeps_ink_dark() -> None:
    width, height = a4_pixels(150)
    # Yellowed paper, darker towards one side (a lid that lets in light unevenly).
    shade = np.linspace(0.75, 1.0, width, dtype=np.float32)[None, :, None]
    tint = np.array([235, 225, 190], np.float32)[None, None, :]
    paper = np.broadcast_to(tint * shade, (height, width, 3)).astype(np.uint8).copy()
    cv2.putText(paper, "Justificatif de domicile", (80, 400), cv2.FONT_HERSHEY_SIMPLEX, 2, (30, 30, 30), 4)
    text = cv2.cvtColor(paper, cv2.COLOR_RGB2GRAY) < 80
    out = scanning.whiten(paper)
    gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    blank = gray[600:, :]
    assert np.percentile(blank, 5) >= 250  # paper: white everywhere, the shaded side too
    assert gray[text].mean() < 80  # ink: still dark


# --------------------------------------------------------------------------------------------------- budgets
def test_ladder_lowers_quality_then_colour_then_resolution_never_below_150_dpi() -> None:
    assert list(ladder(300, "color")) == [
        (300, "color"),
        (300, "gray"),
        (250, "color"),
        (250, "gray"),
        (200, "color"),
        (200, "gray"),
        (150, "color"),
        (150, "gray"),
    ]
    assert [dpi for dpi, _ in ladder(600, "gray")] == [600, 300, 250, 200, 150]
    # A scan already below the floor is never made smaller still.
    assert list(ladder(100, "gray")) == [(100, "gray")]


@pytest.fixture(scope="module")
def three_colour_pages() -> list[scanning.CleanPage]:
    return clean_pages(3)


def _check_pdf(data: bytes, pages: int) -> None:
    """A real PDF of ``pages`` A4 pages, each one JPEG embedded as it was encoded (DCTDecode, no re-encoding)."""
    with pikepdf.Pdf.open(__import__("io").BytesIO(data)) as pdf:
        assert len(pdf.pages) == pages
        for page in pdf.pages:
            box = [float(v) for v in page.mediabox]
            assert box[2] == pytest.approx(A4_POINTS[0], rel=0.01)
            assert box[3] == pytest.approx(A4_POINTS[1], rel=0.01)
            (image,) = page.get_images(recursive=False).values()
            assert image.Filter == pikepdf.Name.DCTDecode
            assert image.read_raw_bytes().startswith(b"\xff\xd8\xff")


@pytest.mark.parametrize("budget", [4_000_000, 1_000_000, 500_000])
def test_every_pdf_fits_its_budget(three_colour_pages: list[scanning.CleanPage], budget: int) -> None:
    pdf = fit_pdf(three_colour_pages, budget)
    assert len(pdf.data) <= budget
    _check_pdf(pdf.data, 3)
    assert pdf.step.dpi >= 150


def test_a_roomy_budget_keeps_the_scan_as_it_came(three_colour_pages: list[scanning.CleanPage]) -> None:
    pdf = fit_pdf(three_colour_pages, 20_000_000)
    assert pdf.step == scanning.Step(300, "color", scanning.QUALITIES[0]) and not pdf.reduced


def test_a_tight_budget_reduces_step_by_step_down_to_150_dpi_grey(
    three_colour_pages: list[scanning.CleanPage],
) -> None:
    floor = fit_pdf(three_colour_pages, 10_000_000)
    sizes = {}
    for budget in (1_500_000, 900_000, 500_000):
        pdf = fit_pdf(three_colour_pages, budget)
        assert len(pdf.data) <= budget and pdf.reduced
        sizes[budget] = pdf.step
    assert floor.step.dpi == 300
    # Each tighter budget uses a lower rung or the same one at a lower quality.
    order = [(s.dpi, s.mode == "color", s.quality) for s in sizes.values()]
    assert order == sorted(order, reverse=True)
    assert all(step.dpi >= 150 for step in sizes.values())


def test_an_impossible_budget_is_refused_with_the_smallest_size(
    three_colour_pages: list[scanning.CleanPage],
) -> None:
    with pytest.raises(BudgetExceeded) as refused:
        fit_pdf(three_colour_pages, 60_000)
    smallest = refused.value.smallest
    assert smallest > 60_000
    # The size it names is really the floor's: a budget of that size is met, at 150 dpi grey.
    pdf = fit_pdf(three_colour_pages, smallest + 2_000)
    assert pdf.step.dpi == 150 and pdf.step.mode == "gray"


# --------------------------------------------------------------------------------------------------- files
def test_scan_names_follow_the_clock_and_never_overwrite(tmp_path: Path) -> None:
    wall = ManualClock().wall()
    stamp = datetime.fromtimestamp(wall).strftime("%Y%m%d-%H%M%S")
    assert scan_name(wall) == f"scan-{stamp}.pdf"
    first = save_pdf(b"%PDF-first", tmp_path, wall)
    second = save_pdf(b"%PDF-second", tmp_path, wall)
    assert (first.name, second.name) == (f"scan-{stamp}.pdf", f"scan-{stamp}-2.pdf")
    assert first.read_bytes() == b"%PDF-first" and second.read_bytes() == b"%PDF-second"


def listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


class PaperTray:
    """A ``Scanner`` that hands out prepared pages and a fault, as a backend would after a job."""

    def __init__(self, pages: list[RawPage], fault: str | None = None) -> None:
        self.result = ScanResult(tuple(pages), fault)

    @property
    def state(self) -> ScannerState:
        return ScannerState(present=True, name="tray", status="idle", sources=("flatbed", "adf"))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def scan(self, request: ScanRequest) -> ScanResult:
        return self.result


def raw_pages(count: int, dpi: int = 150) -> list[RawPage]:
    return [RawPage(skewed_scan(i - 1.5, dpi=dpi, seed=i)[0], dpi, "gray") for i in range(count)]


async def test_scan_to_pdf_writes_one_pdf_named_by_the_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    outcome = await scan_to_pdf(PaperTray(raw_pages(2)), ScanRequest(), dest=tmp_path, budget=1_000_000, clock=clock)
    assert outcome.path == tmp_path / scan_name(clock.wall())
    assert outcome.pages == 2 and outcome.bytes == outcome.path.stat().st_size <= 1_000_000
    assert outcome.message == "scan.done" and outcome.fault is None
    assert "2 page(s)" in both(outcome.message, **outcome.params)["fr"]
    _check_pdf(outcome.path.read_bytes(), 2)


async def test_jam_keeps_the_pages_before_it_and_says_where_to_resume(tmp_path: Path) -> None:
    outcome = await scan_to_pdf(
        PaperTray(raw_pages(3), "jammed"), ScanRequest(), dest=tmp_path, budget=1_000_000, clock=ManualClock()
    )
    assert outcome.path is not None and outcome.pages == 3
    assert (outcome.fault, outcome.message) == ("scanner.jammed", "scan.kept.jammed")
    message = both(outcome.message, **outcome.params)
    assert message["fr"].startswith("3 page(s) scannée(s), bourrage à la page 4")
    assert "page 4" in message["en"]


async def test_other_fault_after_pages_keeps_them_too(tmp_path: Path) -> None:
    outcome = await scan_to_pdf(
        PaperTray(raw_pages(1), "unplugged"), ScanRequest(), dest=tmp_path, budget=1_000_000, clock=ManualClock()
    )
    assert (outcome.pages, outcome.fault, outcome.message) == (1, "scanner.unplugged", "scan.kept")
    assert both(outcome.message, **outcome.params)["en"].startswith("1 page(s) scanned and kept, stopped at page 2")


async def test_fault_without_pages_writes_nothing(tmp_path: Path) -> None:
    outcome = await scan_to_pdf(
        PaperTray([], "cover-open"), ScanRequest(), dest=tmp_path, budget=1_000_000, clock=ManualClock()
    )
    assert (outcome.path, outcome.pages, outcome.message) == (None, 0, "scanner.cover-open")
    assert listing(tmp_path) == []


async def test_impossible_budget_refuses_clearly_and_writes_no_file(tmp_path: Path) -> None:
    outcome = await scan_to_pdf(
        PaperTray(raw_pages(3, dpi=300)), ScanRequest(), dest=tmp_path, budget=50_000, clock=ManualClock()
    )
    assert outcome.path is None and outcome.message == "scan.too-big" and outcome.bytes == 0
    assert outcome.params["budget_kb"] == 50 and int(outcome.params["smallest_kb"]) > 50
    assert "50 Ko" in both(outcome.message, **outcome.params)["fr"]
    assert listing(tmp_path) == []


async def test_reduced_scan_says_so(tmp_path: Path) -> None:
    outcome = await scan_to_pdf(
        PaperTray(raw_pages(3, dpi=300)), ScanRequest(), dest=tmp_path, budget=700_000, clock=ManualClock()
    )
    assert outcome.message == "scan.reduced" and outcome.bytes <= 700_000
    assert outcome.step is not None and outcome.params["dpi"] == outcome.step.dpi >= 150


async def test_unwritable_scans_folder_is_reported_not_raised(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    outcome = await scan_to_pdf(PaperTray(raw_pages(1)), ScanRequest(), dest=missing, budget=10**6, clock=ManualClock())
    assert (outcome.path, outcome.message) == (None, "scan.write-failed")


async def test_pipeline_runs_off_the_event_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    original = scanning.clean_page

    def recording(page: RawPage) -> scanning.CleanPage:
        threads.append(threading.get_ident())
        return original(page)

    monkeypatch.setattr(scanning, "clean_page", recording)
    await scan_to_pdf(PaperTray(raw_pages(2)), ScanRequest(), dest=tmp_path, budget=10**6, clock=ManualClock())
    assert len(threads) == 2 and threading.get_ident() not in threads


# --------------------------------------------------------------------------------------------------- profile
def test_sim_profile_has_two_destinations_with_ants_by_default() -> None:
    config = load_profile(SIM_PROFILE).scanning
    assert [d.name for d in config.destinations] == ["ants", "impots"]
    assert config.destination().max_bytes == 1_000_000
    assert config.destination("impots").max_bytes == 4_000_000
    with pytest.raises(KeyError):
        config.destination("caf")


def test_scanning_section_is_optional_and_its_first_destination_is_the_default() -> None:
    config = ScanningConfig.model_validate({"destinations": [{"name": "caf", "max_bytes": 2_000_000}]})
    assert config.destination().name == "caf"
    assert ScanningConfig().destination().max_bytes > 0


@pytest.mark.parametrize(
    "section",
    [
        {"default_destination": "caf"},
        {"destinations": [{"name": "a", "max_bytes": 10**6}, {"name": "a", "max_bytes": 2 * 10**6}]},
        {"destinations": []},
        {"resolution": 100},
        {"destinations": [{"name": "a", "max_bytes": 1000}]},
    ],
)
def test_bad_scanning_sections_are_refused(section: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScanningConfig.model_validate(section)


def test_reading_a_profile_does_not_load_opencv() -> None:
    code = "import sys, kioskd.profile as p; p.load_profile(p.SIM_PROFILE); print('cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
