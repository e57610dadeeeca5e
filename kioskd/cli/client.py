"""``kioskctl``'s way to kioskd: HTTP on the API's unix socket, and the API's error body shown to a person.

A thin client: it knows paths and the error body's shape, nothing of the server's side; it never talks to hardware."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from kioskd import messages
from kioskd.messages import Lang


def client(socket_path: str, timeout: float | None = 30.0) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=socket_path), base_url="http://kioskd", timeout=timeout)


def fail(body: dict[str, Any], lang: Lang) -> int:
    """Print the error of an API answer in ``lang`` (its ``what`` when it carries no message): the exit code, 1."""
    error = body.get("error", {})
    print(error.get(lang) or error.get("what") or json.dumps(body), file=sys.stderr)
    return 1


def request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """The status and JSON body of one request; exits with 2 (and says so) when kioskd does not answer."""
    try:
        with client(args.socket) as session:
            response = session.request(method, path, **kwargs)
    except (httpx.ConnectError, FileNotFoundError, PermissionError) as exc:
        print(messages.text("cli.not_running", args.lang, socket=args.socket), f"[{exc}]", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"what": response.text[:200]}}
    return response.status_code, body
