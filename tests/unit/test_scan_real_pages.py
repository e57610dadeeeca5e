"""The scan pipeline on real pages (``tests/data/scan-pages``) laid on a dark flatbed at known angles: pages larger
than the glass or run off its edge, A4 on an A4 bed, ID cards and receipts. The residual skew is measured against
the true upright page by registration (``tests.unit.flatbed``), not with the pipeline's own edge or text reading."""

from __future__ import annotations

import dataclasses
import io
import math

import cv2
import numpy as np
import pikepdf
import pytest

from kioskd.hal import RawPage
from kioskd.policies.scanning_pipeline import clean_page, fit_pdf
from tests.unit import flatbed
from tests.unit.flatbed import ID1_MM, PLACEMENTS, Placement

DPI = 150
GOAL = 0.3  # degrees of skew left in the PDF, at most
BY_NAME = {place.name: place for place in PLACEMENTS}


def _mm(pixels: int, dpi: int = DPI) -> float:
    return pixels / dpi * 25.4


def test_the_residual_measure_reads_a_known_turn() -> None:
    # The yardstick first: a true page turned by a known angle reads as that angle, sign included.
    _, truth = flatbed.scan(BY_NAME["letter-on-bed"], DPI)
    centre = (truth.shape[1] / 2, truth.shape[0] / 2)
    for angle in (0.25, -1.5, 4.0):
        turned = cv2.warpAffine(truth, cv2.getRotationMatrix2D(centre, angle, 1.0), truth.shape[::-1], borderValue=255)
        assert flatbed.residual_skew(np.asarray(turned, np.uint8), truth, DPI) == pytest.approx(angle, abs=0.03)


@pytest.mark.parametrize("place", PLACEMENTS, ids=[place.name for place in PLACEMENTS])
def test_real_pages_come_out_straight_within_a_third_of_a_degree(place: Placement) -> None:
    scan, truth = flatbed.scan(place, DPI)
    page = clean_page(RawPage(scan, DPI, "gray"))
    assert page.found
    assert abs(flatbed.residual_skew(page.pixels, truth, DPI)) <= GOAL


@pytest.mark.parametrize("name", ["larger-than-bed", "touching-edge", "a4-on-a4"])
@pytest.mark.parametrize("angle", [-8.6, -3.1, 6.4])
def test_pages_whose_corners_are_off_the_glass_are_deskewed_at_any_angle(name: str, angle: float) -> None:
    place = dataclasses.replace(BY_NAME[name], angle=angle)
    scan, truth = flatbed.scan(place, DPI, seed=abs(round(angle * 10)))
    page = clean_page(RawPage(scan, DPI, "gray"))
    assert page.found and page.skew == pytest.approx(angle, abs=GOAL)
    assert abs(flatbed.residual_skew(page.pixels, truth, DPI)) <= GOAL


@pytest.mark.parametrize("name", ["a4-on-a4", "a4-on-a4-back"])
def test_an_a4_sheet_turned_on_an_a4_bed_keeps_its_whole_size(name: str) -> None:
    scan, _ = flatbed.scan(BY_NAME[name], DPI)
    height, width = clean_page(RawPage(scan, DPI, "gray")).pixels.shape
    # Nothing cut but the 1/150 inch of mixed edge pixels on each side.
    assert _mm(width) == pytest.approx(210.0, abs=1.0) and _mm(height) == pytest.approx(297.0, abs=1.0)


@pytest.mark.parametrize("name", ["id-card", "id-card-low", "receipt"])
def test_small_documents_are_found_deskewed_and_cut_at_their_true_size(name: str) -> None:
    place = BY_NAME[name]
    scan, truth = flatbed.scan(place, DPI)
    page = clean_page(RawPage(scan, DPI, "gray"))
    assert page.found and page.skew == pytest.approx(place.angle, abs=GOAL)
    height, width = page.pixels.shape
    assert _mm(width) == pytest.approx(place.size_mm[0], abs=1.0)
    assert _mm(height) == pytest.approx(place.size_mm[1], abs=1.0)
    assert abs(flatbed.residual_skew(page.pixels, truth, DPI)) <= GOAL


@pytest.mark.parametrize("dpi", [150, 300])
def test_an_id_card_pdf_page_is_the_size_of_an_id_card(dpi: int) -> None:
    scan, _ = flatbed.scan(BY_NAME["id-card"], dpi)
    pdf = fit_pdf([clean_page(RawPage(scan, dpi, "gray"))], 1_000_000)
    with pikepdf.Pdf.open(io.BytesIO(pdf.data)) as document:
        (page,) = document.pages
        box = [float(value) for value in page.mediabox]
    width_mm, height_mm = (box[2] - box[0]) / 72 * 25.4, (box[3] - box[1]) / 72 * 25.4
    assert width_mm == pytest.approx(ID1_MM[0], abs=1.0) and height_mm == pytest.approx(ID1_MM[1], abs=1.0)
    assert not math.isclose(width_mm, 216.0, abs_tol=5)
