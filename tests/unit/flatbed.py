"""Real pages (public test images of OCR and scanning projects, ``tests/data/scan-pages``) laid on a synthetic dark
flatbed at known angles and places, and the residual skew of a cleaned page measured against the page as it was.

The measure is independent of the pipeline: it registers the output onto the true upright page by intensity
(OpenCV's ECC, a Euclidean motion), using neither page edges nor text lines. Test material only: no policy here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]

PAGES = Path(__file__).resolve().parent.parent / "data" / "scan-pages"
# The stored pages are 150 dpi greyscale (downscaled from the 300 dpi originals; see the folder's README).
STORED_DPI = 150
# A common flatbed's glass: Letter's width, A4's length.
FLATBED_MM = (216.0, 297.0)
A4_MM = (210.0, 297.0)
ID1_MM = (85.60, 53.98)
BED_LEVEL = 35  # the lid's dark felt, with noise of ± 8
Kind = Literal["page", "card", "receipt"]


@dataclass(frozen=True)
class Placement:
    """One document on the bed: which stored image, its physical size, the bed's, its turn (degrees,
    counter-clockwise as seen) and where its centre lies on the bed (mm from the bed's top-left corner)."""

    name: str
    image: str
    kind: Kind
    size_mm: tuple[float, float]
    angle: float
    centre_mm: tuple[float, float]
    bed_mm: tuple[float, float] = FLATBED_MM


@cache
def stored(image: str) -> Pixels:
    pixels = cv2.imread(str(PAGES / image), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise FileNotFoundError(PAGES / image)
    return np.asarray(pixels, np.uint8)


def _aspect_size(image: str, width_mm: float) -> tuple[float, float]:
    height, width = stored(image).shape
    return width_mm, width_mm * height / width


PLACEMENTS: tuple[Placement, ...] = (
    Placement("letter-on-bed", "linn.png", "page", _aspect_size("linn.png", 180), 3.5, (108, 150)),
    Placement("magazine-on-bed", "unlv-8087-054.png", "page", _aspect_size("unlv-8087-054.png", 175), -6.0, (105, 148)),
    # Wider and longer than the glass, turned: no corner and only short stretches of its edges show.
    Placement("larger-than-bed", "linn.png", "page", _aspect_size("linn.png", 230), 5.0, (108, 152)),
    # Pushed into the bed's top-left corner: two corners run off the glass.
    Placement("touching-edge", "unlv-8087-054.png", "page", _aspect_size("unlv-8087-054.png", 214), -4.0, (96, 134)),
    Placement("a4-on-a4", "unlv-8087-054.png", "page", A4_MM, 1.5, (105, 148.5), A4_MM),
    Placement("a4-on-a4-back", "linn.png", "page", A4_MM, -2.5, (105, 148.5), A4_MM),
    Placement("id-card", "unlv-8071-093-card.png", "card", ID1_MM, 12.0, (70, 90)),
    Placement("id-card-low", "unlv-8071-093-card.png", "card", ID1_MM, -7.0, (150, 230)),
    Placement(
        "receipt", "typewriter-receipt.png", "receipt", _aspect_size("typewriter-receipt.png", 80), -8.0, (120, 160)
    ),
)


def mm_to_px(mm: float, dpi: int) -> int:
    return round(mm / 25.4 * dpi)


def document(place: Placement, dpi: int) -> Pixels:
    """The document upright at ``dpi`` as the scanner would see it flat: paper, card or receipt stock with its
    print (white of the source image → the stock's shade, black → ink)."""
    width, height = mm_to_px(place.size_mm[0], dpi), mm_to_px(place.size_mm[1], dpi)
    content = cv2.resize(stored(place.image), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if place.kind == "card":
        # A pastel card with a 4 mm border around its print.
        stock = np.full((height, width), 205.0, np.float32)
        inset = mm_to_px(4, dpi)
        inner = cv2.resize(stored(place.image), (width - 2 * inset, height - 2 * inset), interpolation=cv2.INTER_AREA)
        stock[inset:-inset, inset:-inset] = 30 + inner.astype(np.float32) / 255 * 175
        return np.asarray(np.clip(stock, 0, 255), np.uint8)
    low, high = (70.0, 242.0) if place.kind == "receipt" else (20.0, 236.0)
    return np.asarray(np.clip(low + content / 255 * (high - low), 0, 255), np.uint8)


def _outline_mask(place: Placement, shape: tuple[int, int], dpi: int) -> Pixels:
    mask = np.full(shape, 255, np.uint8)
    if place.kind == "card":
        # ID-1 cards have corners rounded to 3.18 mm.
        radius = mm_to_px(3.18, dpi)
        height, width = shape
        mask[:] = 0
        cv2.rectangle(mask, (radius, 0), (width - 1 - radius, height - 1), 255, -1)
        cv2.rectangle(mask, (0, radius), (width - 1, height - 1 - radius), 255, -1)
        for x in (radius, width - 1 - radius):
            for y in (radius, height - 1 - radius):
                cv2.circle(mask, (x, y), radius, 255, -1, cv2.LINE_AA)
    return mask


def scan(place: Placement, dpi: int, seed: int = 0) -> tuple[Pixels, Pixels]:
    """(the flatbed scan, the true upright document), both at ``dpi``, grey."""
    rng = np.random.default_rng(seed)
    upright = document(place, dpi)
    height, width = upright.shape
    bed_w, bed_h = mm_to_px(place.bed_mm[0], dpi), mm_to_px(place.bed_mm[1], dpi)
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), place.angle, 1.0)
    turn[0, 2] += mm_to_px(place.centre_mm[0], dpi) - (width - 1) / 2
    turn[1, 2] += mm_to_px(place.centre_mm[1], dpi) - (height - 1) / 2
    turned = cv2.warpAffine(upright, turn, (bed_w, bed_h), flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.warpAffine(_outline_mask(place, upright.shape, dpi), turn, (bed_w, bed_h), flags=cv2.INTER_LINEAR)
    bed = rng.integers(BED_LEVEL - 8, BED_LEVEL + 8, (bed_h, bed_w)).astype(np.float32)
    a = alpha.astype(np.float32) / 255
    out = a * turned.astype(np.float32) + (1 - a) * bed
    # The scanner's optics soften every edge (~0.2 mm), the paper's too.
    soft = cv2.GaussianBlur(out, (0, 0), 0.2 / 25.4 * dpi)
    return np.asarray(np.clip(soft, 0, 255), np.uint8), upright


def residual_skew(output: Pixels, truth: Pixels, dpi: int) -> float:
    """The angle (degrees) by which ``output`` is still turned against the true upright page, by registering one
    onto the other (ECC, rotation + shift) at ~50 dpi; ``math.inf`` when they cannot be registered at all."""
    if output.ndim == 3:
        output = np.asarray(cv2.cvtColor(output, cv2.COLOR_RGB2GRAY), np.uint8)
    factor = 50 / dpi
    small_out = cv2.resize(output, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    small_truth = cv2.resize(truth, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # The truth padded with white so that an output larger than it still fits inside.
    pad = max(small_out.shape[0], small_out.shape[1]) // 4
    canvas = cv2.copyMakeBorder(small_truth, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    # A first shift from the output's middle half found in the truth (rotation ignored: a few degrees at most).
    oh, ow = small_out.shape
    y0, x0 = oh // 4, ow // 4
    patch = small_out[y0 : y0 + oh // 2, x0 : x0 + ow // 2]
    scores = cv2.matchTemplate(canvas, patch, cv2.TM_CCOEFF_NORMED)
    _, _, _, (mx, my) = cv2.minMaxLoc(scores)
    warp = np.array([[1, 0, mx - x0], [0, 1, my - y0]], np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-5)
    try:
        _, found = cv2.findTransformECC(
            small_out.astype(np.float32), canvas.astype(np.float32), warp, cv2.MOTION_EUCLIDEAN, criteria, None
        )
    except cv2.error:
        return math.inf
    motion = np.asarray(found, np.float64)
    return math.degrees(math.atan2(float(motion[1, 0]), float(motion[0, 0])))
