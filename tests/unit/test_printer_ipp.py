"""drivers/printer/ipp.py's own IPP encoding: the probe asks for the state, reasons, make and model and formats,
and reads them back from a printer's answer (multi-valued attributes carry an empty name after the first)."""

from __future__ import annotations

import pytest

from drivers.printer.ipp import (
    REQUESTED,
    TAG_ENUM,
    TAG_KEYWORD,
    TAG_MIME_TYPE,
    TAG_TEXT,
    _attribute,
    decode_status,
    encode_request,
)


def _answer(*attributes: bytes, status: int = 0x0000) -> bytes:
    return b"\x02\x00" + status.to_bytes(2, "big") + (7).to_bytes(4, "big") + b"\x04" + b"".join(attributes) + b"\x03"


def test_the_request_asks_for_the_formats_and_the_model_too() -> None:
    request = encode_request("ipp://localhost:60000/ipp/print", 7)
    for name in REQUESTED:
        assert name.encode() in request
    assert b"document-format-supported" in request and b"printer-make-and-model" in request


def test_an_answer_gives_state_reasons_model_and_every_format() -> None:
    body = _answer(
        _attribute(TAG_ENUM, "printer-state", (4).to_bytes(4, "big")),
        _attribute(TAG_KEYWORD, "printer-state-reasons", b"media-empty-error"),
        _attribute(TAG_TEXT, "printer-make-and-model", b"HP LaserJet M110w"),
        _attribute(TAG_MIME_TYPE, "document-format-supported", b"image/pwg-raster"),
        _attribute(TAG_MIME_TYPE, "", b"image/jpeg"),
        _attribute(TAG_MIME_TYPE, "", b"image/urf"),
    )
    status = decode_status(body)
    assert status.state == 4 and status.reasons == ("media-empty-error",)
    assert status.model == "HP LaserJet M110w"
    assert status.formats == ("image/pwg-raster", "image/jpeg", "image/urf")


def test_a_refusal_is_not_taken_for_an_answer() -> None:
    with pytest.raises(ValueError):
        decode_status(_answer(status=0x0400))
