"""Asks a network printer itself how it is (IPP Get-Printer-Attributes, asynchronously, with a timeout), so that a
printer switched off, hung or out of paper shows while CUPS has no job for it, and what it is and accepts.

It reads the printer's state, state reasons, make and model and document formats, nothing else: documents go
through CUPS, never through here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

GET_PRINTER_ATTRIBUTES = 0x000B
TAG_OPERATION = 0x01
TAG_END = 0x03
TAG_ENUM = 0x23
TAG_TEXT = 0x41
TAG_KEYWORD = 0x44
TAG_URI = 0x45
TAG_CHARSET = 0x47
TAG_LANGUAGE = 0x48
TAG_MIME_TYPE = 0x49
REQUESTED = ("printer-state", "printer-state-reasons", "printer-make-and-model", "document-format-supported")


class Unreachable(Exception):
    """The printer did not answer over IPP: refused, timed out, or something else listens there."""


@dataclass(frozen=True)
class DeviceStatus:
    state: int  # printer-state: 3 idle, 4 processing, 5 stopped
    reasons: tuple[str, ...]  # printer-state-reasons as the printer sends them, severity suffixes included
    model: str = ""  # printer-make-and-model
    formats: tuple[str, ...] = ()  # document-format-supported: what it prints without CUPS converting


def http_url(device_uri: str) -> str | None:
    """The HTTP address of an ``ipp://`` or ``ipps://`` device URI (port 631 by default); ``None`` for any other
    scheme (usb://, dnssd://, socket://): those printers are only known through CUPS."""
    parts = urlsplit(device_uri)
    scheme = {"ipp": "http", "ipps": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]  # never send credentials a technician put in the device URI
    if parts.port is None:
        netloc += ":631"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _attribute(tag: int, name: str, value: bytes) -> bytes:
    encoded = name.encode()
    return bytes([tag]) + len(encoded).to_bytes(2, "big") + encoded + len(value).to_bytes(2, "big") + value


def encode_request(device_uri: str, request_id: int) -> bytes:
    """A Get-Printer-Attributes request for the ``REQUESTED`` attributes only."""
    body = bytearray(b"\x02\x00" + GET_PRINTER_ATTRIBUTES.to_bytes(2, "big") + request_id.to_bytes(4, "big"))
    body.append(TAG_OPERATION)
    body += _attribute(TAG_CHARSET, "attributes-charset", b"utf-8")
    body += _attribute(TAG_LANGUAGE, "attributes-natural-language", b"en")
    body += _attribute(TAG_URI, "printer-uri", device_uri.encode())
    body += _attribute(TAG_KEYWORD, "requested-attributes", REQUESTED[0].encode())
    for name in REQUESTED[1:]:
        body += _attribute(TAG_KEYWORD, "", name.encode())  # an empty name: another value of the same
    body.append(TAG_END)
    return bytes(body)


def decode_status(body: bytes) -> DeviceStatus:
    """The state, reasons, model and formats in an IPP response; ``ValueError`` when it is not a successful,
    well-formed one."""
    if len(body) < 9 or int.from_bytes(body[2:4], "big") >= 0x0100:
        raise ValueError("not a successful IPP response")
    pos, name, state, model = 8, "", 0, ""
    reasons: list[str] = []
    formats: list[str] = []
    while pos < len(body):
        tag = body[pos]
        pos += 1
        if tag == TAG_END:
            return DeviceStatus(state, tuple(reasons), model, tuple(formats))
        if tag < 0x10:  # the start of an attribute group
            continue
        name_length = int.from_bytes(body[pos : pos + 2], "big")
        if name_length:
            name = body[pos + 2 : pos + 2 + name_length].decode("utf-8", "replace")
        pos += 2 + name_length
        value_length = int.from_bytes(body[pos : pos + 2], "big")
        value = body[pos + 2 : pos + 2 + value_length]
        pos += 2 + value_length
        if pos > len(body):
            break
        if name == "printer-state" and tag == TAG_ENUM and value_length == 4:
            state = int.from_bytes(value, "big")
        elif name == "printer-state-reasons" and tag == TAG_KEYWORD:
            reasons.append(value.decode("ascii", "replace"))
        elif name == "printer-make-and-model" and tag == TAG_TEXT:
            model = value.decode("utf-8", "replace")
        elif name == "document-format-supported" and tag == TAG_MIME_TYPE:
            formats.append(value.decode("ascii", "replace"))
    raise ValueError("truncated IPP response")


class DeviceProbe:
    """One HTTP client for the printer; a fresh connection for every probe, so that a printer that restarted is
    not taken for a dead one because of a stale kept-alive socket."""

    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=timeout,
            verify=False,  # printers serve self-signed certificates; only their state is read
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._ids = itertools.count(1)

    async def status(self, device_uri: str, within: float | None = None) -> DeviceStatus | None:
        """What the printer says; ``None`` when it answers but not usefully. Raises ``Unreachable`` when it does not
        answer within ``within`` seconds (the client's own when ``None``)."""
        url = http_url(device_uri)
        if url is None:
            return None
        request = encode_request(device_uri, next(self._ids) & 0x7FFFFFFF or 1)
        try:
            response = await self._client.post(
                url,
                content=request,
                headers={"Content-Type": "application/ipp"},
                timeout=self._client.timeout if within is None else httpx.Timeout(within),
            )
        except httpx.HTTPError as exc:
            raise Unreachable(type(exc).__name__) from None
        if response.status_code != 200:
            return None
        try:
            return decode_status(response.content)
        except ValueError:
            return None

    async def aclose(self) -> None:
        await self._client.aclose()
