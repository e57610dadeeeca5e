"""The scan policy: each page found on the scanner's dark background, deskewed, cropped and whitened (OpenCV), and
the pages of one job made into one PDF that fits its upload destination's size budget (img2pdf).

It imports no driver and no SANE (it drives any ``kioskd.hal.Scanner``), runs its CPU work off the event loop, and
never logs or reports file names, paths or document content: only counts, sizes and catalogue keys."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import img2pdf
import numpy as np
import numpy.typing as npt

from kioskd.hal import Clock, RawPage, ScanMode, Scanner, ScanRequest

Pixels = npt.NDArray[np.uint8]

# Budget reduction never goes below this resolution, in grey: the floor at which small print stays legible.
MIN_DPI = 150
# JPEG qualities tried from the best down; below 40 the ringing around letters starts to eat thin strokes.
QUALITIES = (80, 65, 50, 40)
# Resolutions tried below the scan's own (a 600 dpi scan steps to 300 first: nobody uploads 600 dpi).
RESOLUTION_STEPS = (300, 250, 200, 150)
# img2pdf's own bytes: a fixed header and trailer plus a few objects per page (measured with img2pdf 0.6: ~820 B
# + ~480 B a page; rounded up so a step that passes the estimate almost always passes the real size check).
PDF_OVERHEAD = 1024
PDF_OVERHEAD_PER_PAGE = 512

# Page detection works on a reduced copy: at ~75 dpi an A4 edge is still 600-900 pixels long, which keeps its
# angle to a few hundredths of a degree, and the search is ~16 times cheaper than at 300 dpi.
DETECT_DPI = 75
# The smallest document worth cutting out, in mm²: an ID-1 card is 85.6 × 54 mm (4620 mm²), a till receipt
# narrower still; anything smaller is a label, a hand's edge or dust.
MIN_DOCUMENT_MM2 = 1500.0
# A background at least this dark (0-255) is the scanner's lid or ADF backing, not paper.
MAX_BACKGROUND = 120
# The share of the scan's outer rim that must be background. A page filling an ADF scan's width still leaves the
# rows above and below it (~40 % of the rim); a page larger than the bed, turned, leaves only thin dark wedges
# (~5 % at 2°); a white lid leaves none (its dark class is ink, which rarely touches the frame).
MIN_DARK_RIM = 0.03
# Text lines are read at this resolution: a 2 mm x-height is still 6 pixels, and a line 15 cm long sets the
# angle to a tenth of a degree.
TEXT_DPI = 100
# The widest skew searched in the text lines, in degrees: a page laid by hand on a flatbed or pulled by a feeder.
MAX_SKEW = 20.0
# Page edges and text lines agreeing within this (degrees) confirm each other: the edges' angle is kept (paper
# edges are straighter than print is square to them). Disagreeing, the one with more evidence wins.
AGREEMENT = 1.0
# Pixels at or above this level after background division are paper: they become pure white, which JPEG
# stores in almost no bytes.
PAPER_WHITE = 225


# --------------------------------------------------------------------------------------------------- pages
@dataclass(frozen=True, eq=False)
class CleanPage:
    """One page out of the pipeline, at the scan's resolution; RGB (H×W×3) or grey (H×W).

    ``skew`` is the angle (degrees, counter-clockwise as seen) by which the page lay rotated in the scan, and
    ``corners`` its four corners in the scan's pixels (top-left, top-right, bottom-right, bottom-left) — both only
    meaningful when ``found`` (a page stood out from a dark background); otherwise the whole frame is kept."""

    pixels: Pixels
    dpi: int
    mode: ScanMode
    found: bool
    skew: float = 0.0
    corners: tuple[tuple[float, float], ...] = ()


def _gray(pixels: Pixels) -> Pixels:
    return pixels if pixels.ndim == 2 else np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


@dataclass(frozen=True)
class _PageRect:
    centre: tuple[float, float]
    size: tuple[float, float]  # width, height in scan pixels, along the page's own axes
    skew: float


def _reduced(gray: Pixels, dpi: int, target: int) -> tuple[Pixels, float]:
    scale = min(1.0, target / max(dpi, 1))
    if scale >= 1:
        return gray, 1.0
    return np.asarray(cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8), scale


def _document_outline(small: Pixels, dpi: int, scale: float) -> npt.NDArray[np.int32] | None:
    """The outline (N×2 points of the reduced copy) of the largest bright document on a dark background, or None
    when there is no dark background (a white lid) or nothing large enough to be a document."""
    level, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if level > 200:
        return None
    # Part of the frame's rim must be dark, and that dark must be the lid's: the background is judged where it
    # shows, at the rim, since the dark class inside also holds a page's grey print. Otherwise the dark class is
    # only ink on a page that fills the frame (a white lid), and there is nothing to cut.
    rim = np.concatenate((mask[0], mask[-1], mask[:, 0], mask[:, -1]))
    rim_pixels = np.concatenate((small[0], small[-1], small[:, 0], small[:, -1]))
    background = rim_pixels[rim == 0]
    if float((rim == 0).mean()) < MIN_DARK_RIM or float(background.mean()) > MAX_BACKGROUND:
        return None
    # Opening drops dust and the scanner's bright specks so they cannot join the page's outline.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    mm_per_pixel = 25.4 / (dpi * scale)
    if cv2.contourArea(outline) * mm_per_pixel**2 < MIN_DOCUMENT_MM2:
        return None
    return np.asarray(outline.reshape(-1, 2), np.int32)


def _fold(angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Angles (radians) folded into [-45°, 45°): a rectangle's four sides all give the same folded angle."""
    quarter = math.pi / 2
    return np.asarray((angle + quarter / 2) % quarter - quarter / 2, np.float64)


def _edge_angle(outline: npt.NDArray[np.int32], shape: tuple[int, ...]) -> tuple[float, float] | None:
    """The image angle (radians, y down) of the document's straight edges, and how many outline pixels back it.

    Only the outline's stretches away from the frame count: where a page runs off the scan area, the frame cuts it
    and that cut is not a page edge. The four corners are never needed, so a page larger than the bed, or touching
    its edge, still gives its angle from the edges that show."""
    height, width = shape[:2]
    points = outline.astype(np.float64)
    count = len(points)
    reach = 8  # ~5 mm at 75 dpi: long enough to measure a direction, short enough to stay on one side
    if count < 4 * reach:
        return None
    ahead, behind = np.roll(points, -reach, axis=0), np.roll(points, reach, axis=0)
    chord = ahead - behind
    direction = np.arctan2(chord[:, 1], chord[:, 0])
    x, y = points[:, 0], points[:, 1]
    inside = (x > 2) & (x < width - 3) & (y > 2) & (y < height - 3)
    for shifted in (ahead, behind):
        inside &= (shifted[:, 0] > 2) & (shifted[:, 0] < width - 3) & (shifted[:, 1] > 2) & (shifted[:, 1] < height - 3)
    if inside.sum() < 2 * reach:
        return None
    folded = _fold(direction[inside])
    # The most common direction, from a histogram of half-degree bins smoothed over three.
    bins = np.histogram(folded, bins=180, range=(-math.pi / 4, math.pi / 4))[0].astype(np.float64)
    smooth = bins + np.roll(bins, 1) + np.roll(bins, -1)
    mode = -math.pi / 4 + (int(np.argmax(smooth)) + 0.5) * (math.pi / 2) / 180
    near = inside.copy()
    near[inside] = np.abs(_fold(folded - mode)) < math.radians(4)
    # Refine: in a frame turned by the mode, every side is a line; one common slope fits all sides at once, each
    # side keeping its own offset (least squares pooled over the sides, two rounds, the second without outliers).
    cos, sin = math.cos(mode), math.sin(mode)
    along = x * cos + y * sin
    across = -x * sin + y * cos
    # Whether the side runs closer to vertical than to horizontal in the turned frame.
    turn = np.abs(((direction - mode + math.pi / 2) % math.pi) - math.pi / 2) > math.pi / 4
    keep = near.copy()
    slope = 0.0
    for _ in range(2):
        sxy = sxx = 0.0
        used = 0
        sides: list[npt.NDArray[np.float64]] = []  # per side: outline index, du, dv, sign
        for vertical in (False, True):
            pick = keep & (turn == vertical)
            if pick.sum() < 2:
                continue
            u, v = (across[pick], along[pick]) if vertical else (along[pick], across[pick])
            index = np.flatnonzero(pick)
            order = np.argsort(v)
            # Sides are told apart by their offset: a gap of more than 3 pixels starts another side.
            breaks = np.flatnonzero(np.diff(v[order]) > 3) + 1
            for side in np.split(order, breaks):
                if len(side) < 3 * reach:
                    continue
                du, dv = u[side] - u[side].mean(), v[side] - v[side].mean()
                sign = -1.0 if vertical else 1.0
                sxy += sign * float((du * dv).sum())
                sxx += float((du * du).sum())
                used += len(side)
                sides.append(np.stack((index[side], du, dv, np.full(len(side), sign))))
        if used == 0 or sxx == 0:
            return None
        slope = sxy / sxx
        keep = np.zeros_like(keep)
        for at, du, dv, sign in sides:
            off = np.abs(dv - sign * slope * du)
            keep[at[off <= max(1.5, 2.5 * float(np.median(off)))].astype(np.int64)] = True
    return mode + math.atan(slope), float(keep.sum())


def _text_angle(gray: Pixels, dpi: int, region: npt.NDArray[np.int32] | None, scale: float) -> float | None:
    """The image angle (radians, y down) of the text lines: the turn at which the ink's row profile is the most
    peaked (projection profile), or None when the ink shows no lines."""
    small, text_scale = _reduced(gray, dpi, TEXT_DPI)
    ink = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 25)
    inside = np.zeros_like(ink)
    if region is not None:
        # The document's own area, less a band along its edges (their shadow and the background are no text).
        outline = np.round((region.astype(np.float64) + 0.5) * (text_scale / scale) - 0.5).astype(np.int32)
        cv2.fillPoly(inside, [outline], 255)
        band = max(3, round(TEXT_DPI * 4 / 25.4))
        inside = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_RECT, (band, band)))
    else:
        inside[:] = 255
    ys, xs = np.nonzero((ink > 0) & (inside > 0))
    if len(xs) < 300:
        return None
    if len(xs) > 60_000:
        pick = np.random.default_rng(0).choice(len(xs), 60_000, replace=False)
        xs, ys = xs[pick], ys[pick]
    x, y = xs.astype(np.float64), ys.astype(np.float64)

    def peaked(angle: float) -> float:
        rows = np.round(y * math.cos(angle) - x * math.sin(angle))
        counts = np.bincount((rows - rows.min()).astype(np.int64))
        return float((counts.astype(np.float64) ** 2).sum())

    coarse = np.radians(np.arange(-MAX_SKEW, MAX_SKEW + 0.25, 0.5))
    scores = np.array([peaked(float(a)) for a in coarse])
    best = float(coarse[int(np.argmax(scores))])
    # Lines of text make one turn stand out; a photo or a blank page gives a flat profile of scores.
    if scores.max() < 1.25 * float(np.median(scores)):
        return None
    fine = best + np.radians(np.arange(-0.5, 0.5 + 0.025, 0.05))
    return float(fine[int(np.argmax([peaked(float(a)) for a in fine]))])


def _agreed_skew(edge: tuple[float, float] | None, text: float | None, side: float) -> float:
    """The skew (degrees, counter-clockwise as seen) from the edges' and the text lines' angles."""
    if edge is not None and text is not None:
        edge_angle, support = edge
        if abs(math.degrees(edge_angle - text)) <= AGREEMENT or support >= side:
            # Agreeing, or edges along more than a whole side: paper edges are straighter than print is square.
            return -math.degrees(edge_angle)
        return -math.degrees(text)
    if edge is not None:
        return -math.degrees(edge[0])
    return -math.degrees(text) if text is not None else 0.0


def _find_page(gray: Pixels, dpi: int) -> _PageRect | None:
    """The document's upright rectangle when it stands out from a dark background, else None.

    The skew comes from the document's straight edges that show (not its corners) checked against its text
    lines; the rectangle is the smallest upright one holding all the paper that shows, so a page turned on a bed
    of its own size loses none of what the scanner saw."""
    small, scale = _reduced(gray, dpi, DETECT_DPI)
    outline = _document_outline(small, dpi, scale)
    if outline is None:
        return None
    edge = _edge_angle(outline, small.shape)
    text = _text_angle(gray, dpi, outline, scale)
    box = cv2.minAreaRect(outline)
    skew = _agreed_skew(edge, text, max(box[1]))
    # A pixel centre u of the reduced copy sits at (u + 0.5) / scale - 0.5 in the scan.
    points = (outline.astype(np.float64) + 0.5) / scale - 0.5
    theta = math.radians(skew)
    cos, sin = math.cos(theta), math.sin(theta)
    # In the page's own frame (x along its top edge, y down along its side).
    along = points[:, 0] * cos - points[:, 1] * sin
    down = points[:, 0] * sin + points[:, 1] * cos
    # The outline runs through the outermost pixels that are mostly paper: the edge's mixed pixels stay out.
    left, right = float(along.min()), float(along.max())
    top, bottom = float(down.min()), float(down.max())
    a, d = (left + right) / 2, (top + bottom) / 2
    centre = (a * cos + d * sin, -a * sin + d * cos)
    return _PageRect(centre, (right - left, bottom - top), skew)


def _warp_page(pixels: Pixels, rect: _PageRect, dpi: int) -> Pixels:
    """Rotate the page upright and cut it out of the scan in one resampling."""
    # The edge pixels blend paper and background; 1/150 inch off each side keeps a grey line out of the PDF.
    inset = max(1, dpi // 150)
    width, height = round(rect.size[0]) - 2 * inset, round(rect.size[1]) - 2 * inset
    cx, cy = rect.centre
    matrix = cv2.getRotationMatrix2D((cx, cy), -rect.skew, 1.0)
    matrix[0, 2] += width / 2 - cx
    matrix[1, 2] += height / 2 - cy
    white = (255, 255, 255) if pixels.ndim == 3 else 255
    upright = cv2.warpAffine(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=white)
    return np.asarray(upright, dtype=np.uint8)


def _corners(rect: _PageRect) -> tuple[tuple[float, float], ...]:
    cx, cy = rect.centre
    w, h = rect.size
    theta = math.radians(rect.skew)
    # Counter-clockwise as seen on screen is clockwise in image coordinates (y points down).
    cos, sin = math.cos(theta), math.sin(theta)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out.append((cx + dx * cos + dy * sin, cy - dx * sin + dy * cos))
    return tuple(out)


def whiten(pixels: Pixels) -> Pixels:
    """Divide out the paper's shade (uneven lighting, tinted or yellowed paper) and push paper to pure white."""
    height, width = pixels.shape[:2]
    small = cv2.resize(pixels, (max(1, width // 8), max(1, height // 8)), interpolation=cv2.INTER_AREA)
    # A max filter wider than any letter stroke leaves only the paper's level under the text.
    paper = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9)))
    paper = cv2.blur(paper, (9, 9))
    # Large dark areas (a photo, a black banner) are not paper: never brighten them by more than a third.
    paper = np.maximum(paper, np.uint8(float(np.percentile(paper, 90)) * 0.75))
    paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    flat = cv2.divide(pixels, paper, scale=255)
    return np.asarray(cv2.LUT(flat, _LEVELS), dtype=np.uint8)


def _levels() -> Pixels:
    ramp = np.arange(256, dtype=np.float32)
    return np.clip(ramp * 255.0 / PAPER_WHITE, 0, 255).astype(np.uint8)


_LEVELS = _levels()


def clean_page(page: RawPage) -> CleanPage:
    """Find the page, deskew it, crop the background away and whiten the paper (CPU-bound: run it off the loop)."""
    pixels = page.pixels
    rect = _find_page(_gray(pixels), page.dpi)
    if rect is None:
        return CleanPage(whiten(pixels), page.dpi, page.mode, found=False)
    upright = _warp_page(pixels, rect, page.dpi)
    return CleanPage(whiten(upright), page.dpi, page.mode, True, rect.skew, _corners(rect))


# --------------------------------------------------------------------------------------------------- budget
@dataclass(frozen=True)
class Step:
    """One rung of the size ladder: a resolution, a colour mode and a JPEG quality."""

    dpi: int
    mode: ScanMode
    quality: int


@dataclass(frozen=True)
class Pdf:
    """A PDF made in memory, not yet written anywhere, and the step of the ladder that made it fit."""

    data: bytes
    pages: int
    step: Step
    reduced: bool  # a lower quality, resolution or grey was needed to fit the budget


class BudgetExceeded(Exception):
    """Even the floor of the ladder (150 dpi grey, the lowest quality) does not fit; nothing was written."""

    def __init__(self, budget: int, smallest: int) -> None:
        super().__init__(f"the smallest PDF takes {smallest} bytes, the budget is {budget}")
        self.budget = budget
        self.smallest = smallest


def ladder(dpi: int, mode: ScanMode) -> Iterator[tuple[int, ScanMode]]:
    """(resolution, mode) from the best down to the floor: grey before a lower resolution, since grey text at
    300 dpi reads better than colour text at 200."""
    resolutions = [dpi, *(step for step in RESOLUTION_STEPS if MIN_DPI <= step < dpi)]
    for resolution in resolutions:
        if mode == "color":
            yield resolution, "color"
        yield resolution, "gray"


def _resample(page: CleanPage, dpi: int, mode: ScanMode) -> Pixels:
    pixels = page.pixels
    if mode == "gray":
        pixels = _gray(pixels)
    if dpi < page.dpi:
        factor = dpi / page.dpi
        smaller = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return np.asarray(smaller, dtype=np.uint8)
    return pixels


def encode_jpeg(pixels: Pixels, quality: int) -> bytes:
    """Baseline JPEG with optimised Huffman tables (a few % smaller for the same pixels)."""
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def assemble_pdf(jpegs: Sequence[bytes], dpi: int) -> bytes:
    """One PDF page per JPEG, each embedded as is (DCTDecode, no recompression), sized by ``dpi``."""
    layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
    # No dates in the file: it says nothing about when a citizen came.
    data: bytes = img2pdf.convert(list(jpegs), layout_fun=layout, nodate=True)
    return data


def _overhead(pages: int) -> int:
    return PDF_OVERHEAD + PDF_OVERHEAD_PER_PAGE * pages


def _fits(resampled: Sequence[Pixels], dpi: int, quality: int, budget: int) -> bytes | None:
    """The PDF of the pages at ``quality`` if it fits ``budget``, else None. Encoding stops at the first page that
    makes the sum too big, so a hopeless step costs a page or two, not the whole job."""
    room = budget - _overhead(len(resampled))
    jpegs: list[bytes] = []
    for pixels in resampled:
        jpegs.append(encode_jpeg(pixels, quality))
        room -= len(jpegs[-1])
        if room < 0:
            return None
    data = assemble_pdf(jpegs, dpi)
    return data if len(data) <= budget else None


def fit_pdf(pages: Sequence[CleanPage], budget: int) -> Pdf:
    """The best PDF of ``pages`` that fits ``budget`` bytes: quality first, then grey, then resolution, never below
    150 dpi grey. Raises ``BudgetExceeded`` when even that floor is too big (and writes nothing)."""
    if not pages:
        raise ValueError("a PDF needs at least one page")
    if budget <= 0:
        raise ValueError("the budget must be positive")
    rungs = list(ladder(min(page.dpi for page in pages), pages[0].mode))
    # The floor first: when it does not fit, nothing will, and the agent hears it without waiting for the ladder.
    floor_dpi, floor_mode = rungs[-1]
    lowest = QUALITIES[-1]
    floor = _fits([_resample(page, floor_dpi, floor_mode) for page in pages], floor_dpi, lowest, budget)
    if floor is None:
        smallest = sum(len(encode_jpeg(_resample(page, floor_dpi, floor_mode), lowest)) for page in pages)
        raise BudgetExceeded(budget, smallest + _overhead(len(pages)))
    for index, (dpi, mode) in enumerate(rungs):
        resampled = [_resample(page, dpi, mode) for page in pages]
        # The best quality first (the usual case: it fits at once); then the lowest, so that a hopeless rung is
        # left after two tries instead of four; then the ones between, best first.
        best = _fits(resampled, dpi, QUALITIES[0], budget)
        if best is not None:
            return Pdf(best, len(pages), Step(dpi, mode, QUALITIES[0]), reduced=index > 0)
        worst = floor if index == len(rungs) - 1 else _fits(resampled, dpi, lowest, budget)
        if worst is None:
            continue
        for quality in QUALITIES[1:-1]:
            data = _fits(resampled, dpi, quality, budget)
            if data is not None:
                return Pdf(data, len(pages), Step(dpi, mode, quality), reduced=True)
        return Pdf(worst, len(pages), Step(dpi, mode, lowest), reduced=True)
    return Pdf(floor, len(pages), Step(floor_dpi, floor_mode, lowest), reduced=True)


# --------------------------------------------------------------------------------------------------- files
def scan_name(wall: float, attempt: int = 1) -> str:
    """``scan-YYYYMMDD-HHMMSS.pdf`` in the van's local time; ``-2``, ``-3`` … when that name is taken."""
    stamp = datetime.fromtimestamp(wall).strftime("%Y%m%d-%H%M%S")
    return f"scan-{stamp}.pdf" if attempt == 1 else f"scan-{stamp}-{attempt}.pdf"


def save_pdf(data: bytes, dest: Path, wall: float) -> Path:
    """Write ``data`` under a new name in ``dest`` (never over an existing file); a failed write leaves nothing."""
    # the folder itself never through a link (the session app may have swapped it), each name relative to it
    folder = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for attempt in range(1, 1000):
            name = scan_name(wall, attempt)
            try:
                # O_EXCL: two jobs finishing in the same second must not overwrite each other's scans (and a link
                # planted under that name is never written through). 0640: the session app (its user in the
                # workspace's group) uploads them; the folder keeps everyone else out.
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640, dir_fd=folder)
            except FileExistsError:
                continue
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=folder)
                raise
            return dest / name
    finally:
        os.close(folder)
    raise OSError(errno.EEXIST, "no free scan name left for this second")


# --------------------------------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class ScanOutcome:
    """What a scan job left for the agent: the PDF (None when there is none), its pages and bytes, the scanner
    fault that stopped the job early if any (a catalogue key such as ``scanner.jammed``: the pages before it are in
    the PDF), and the catalogue key and parameters of the message to show."""

    path: Path | None
    pages: int
    bytes: int
    message: str
    params: Mapping[str, int | str] = field(default_factory=dict)
    fault: str | None = None
    step: Step | None = None  # the resolution, mode and quality the PDF was made at


def produce_pdf(raw: Sequence[RawPage], budget: int, dest: Path, wall: float) -> tuple[Path, Pdf]:
    """The whole CPU-bound part of a job: clean every page, fit the PDF to the budget, write it (blocking)."""
    pages = [clean_page(page) for page in raw]
    pdf = fit_pdf(pages, budget)
    return save_pdf(pdf.data, dest, wall), pdf


_pipeline_lock = threading.Lock()
_pipeline: ThreadPoolExecutor | None = None


def _pipeline_executor() -> ThreadPoolExecutor:
    """One thread for all jobs: a stack of colour pages holds hundreds of MB, two at once would double it."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kioskd-scan-pipeline")
        return _pipeline


def _kilobytes(size: int) -> int:
    return max(1, round(size / 1000))


async def scan_to_pdf(scanner: Scanner, request: ScanRequest, *, dest: Path, budget: int, clock: Clock) -> ScanOutcome:
    """Scan, clean and save one job as one PDF in ``dest`` (the session's scans folder) within ``budget`` bytes.

    Pages scanned before a fault are kept and saved; a budget that even 150 dpi grey cannot meet is refused
    (``scan.too-big``) without writing anything. The CPU work runs on the pipeline's own thread."""
    result = await scanner.scan(request)
    fault = f"scanner.{result.fault}" if result.fault else None
    count = len(result.pages)
    if count == 0:
        return ScanOutcome(None, 0, 0, fault or "scan.empty", fault=fault)
    loop = asyncio.get_running_loop()
    try:
        path, pdf = await loop.run_in_executor(
            _pipeline_executor(), produce_pdf, result.pages, budget, dest, clock.wall()
        )
    except BudgetExceeded as exc:
        params = {"pages": count, "budget_kb": _kilobytes(budget), "smallest_kb": _kilobytes(exc.smallest)}
        return ScanOutcome(None, count, 0, "scan.too-big", params, fault)
    except OSError:
        return ScanOutcome(None, count, 0, "scan.write-failed", {"pages": count}, fault)
    size = len(pdf.data)
    done: dict[str, int | str] = {"pages": count, "size_kb": _kilobytes(size), "budget_kb": _kilobytes(budget)}
    if fault is not None:
        done["page"] = count + 1
        key = "scan.kept.jammed" if result.fault == "jammed" else "scan.kept"
    elif pdf.reduced:
        done["dpi"] = pdf.step.dpi
        key = "scan.reduced"
    else:
        key = "scan.done"
    return ScanOutcome(path, count, size, key, done, fault, pdf.step)
