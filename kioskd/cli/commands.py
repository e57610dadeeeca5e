"""``kioskctl``'s command table: each verb with its arguments and its handler, in the order ``--help`` lists them.

A handler asks the API (``client``) and prints what ``render`` makes of the answer; it returns the exit code (None:
0 without an explicit exit). Adding a verb is adding a row to ``COMMANDS``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kioskd import messages, paths
from kioskd.cli import render
from kioskd.cli.client import client, fail, request
from kioskd.messages import Lang
from kioskd.records import stats

Handler = Callable[[argparse.Namespace], int | None]


def _no_arguments(_: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Handler
    setup: Callable[[argparse.ArgumentParser], None] = _no_arguments


def _json(body: Any, indent: int | None = None) -> str:
    return json.dumps(body, indent=indent, ensure_ascii=False)


def _answer(args: argparse.Namespace, code: int, body: Any) -> int | None:
    """A station command's answer: its detail (or the state it left), the JSON with ``--json``, or the error."""
    if args.json:
        print(_json(body))
    elif code == 200:
        print(body.get("detail") or body.get("state"))
    if code != 200:
        return fail(body, args.lang) if not args.json else 1
    return None


def _shown(args: argparse.Namespace, code: int, body: Any, text: Callable[[Any], str]) -> int | None:
    """A read-only answer: ``text`` of it, its JSON (indented) with ``--json``, or the error."""
    if code != 200:
        return fail(body, args.lang)
    print(_json(body, indent=2) if args.json else text(body))
    return None


# ------------------------------------------------------------------------------------------------ the station
def status(args: argparse.Namespace) -> int | None:
    code, body = request(args, "GET", "/status")
    return _shown(args, code, body, lambda b: render.render_status(b, args.lang))


def station_command(args: argparse.Namespace) -> int | None:
    """``start``, ``next``, ``end-of-day``: the API path is the verb."""
    return _answer(args, *request(args, "POST", f"/{args.command}"))


def _wipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retry", action="store_true", required=True)


def wipe(args: argparse.Namespace) -> int | None:
    return _answer(args, *request(args, "POST", "/wipe/retry"))


def events(args: argparse.Namespace) -> int | None:
    try:
        with client(args.socket, timeout=None) as session, session.stream("GET", "/events") as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    print(line.removeprefix("data: "), flush=True)
    except KeyboardInterrupt:
        pass
    except httpx.ConnectError:
        print(messages.text("cli.not_running", args.lang, socket=args.socket), file=sys.stderr)
        raise SystemExit(2) from None
    return None


def _privacy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("switch", choices=["on", "off", "toggle"])


def privacy(args: argparse.Namespace) -> int | None:
    code, body = request(args, "POST", "/privacy", json={"on": {"on": True, "off": False}.get(args.switch)})
    if code == 200 and not args.json:
        print(render.render_curtain(body, args.lang))
        return None
    return _answer(args, code, body)


def _switch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("switch", choices=["on", "off", "toggle"])


def handover(args: argparse.Namespace) -> int | None:
    return _handover_command(args, "/handover")


def confidential(args: argparse.Namespace) -> int | None:
    return _handover_command(args, "/confidential")


def _handover_command(args: argparse.Namespace, path: str) -> int | None:
    code, body = request(args, "POST", path, json={"on": {"on": True, "off": False}.get(args.switch)})
    if code == 200 and not args.json:
        print(render.render_handover(body, args.lang))
        return None
    return _answer(args, code, body)


def _stop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the stop's name (none: the van left its stop)")


def stop(args: argparse.Namespace) -> int | None:
    code, body = request(args, "POST", "/stop", json={"name": args.name})
    if code != 200:
        return fail(body, args.lang)
    print(_json(body) if args.json else render.render_stop(body, args.lang))
    return None


# ------------------------------------------------------------------------------------------- the citizen's files
def _print_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file")


def print_file(args: argparse.Namespace) -> int | None:
    try:
        with open(args.file, "rb") as document:
            data = document.read()
    except OSError as exc:
        print(f"kioskctl: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    code, body = request(args, "POST", "/print", content=data, headers={"content-type": "application/pdf"})
    return _answer(args, code, body)


def jobs(args: argparse.Namespace) -> int | None:
    code, body = request(args, "GET", "/jobs")
    if code != 200:
        return fail(body, args.lang)
    text = _json(body, indent=2) if args.json else render.render_jobs(body)
    if text:
        print(text)
    return None


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adf", action="store_true", help="from the feeder (default: flatbed)")
    parser.add_argument("--all", action="store_true", help="the whole feeder stack into one PDF")
    parser.add_argument("--duplex", action="store_true", help="from the feeder, both sides of each sheet")
    parser.add_argument("--gray", action="store_true", help="grey instead of the profile's mode")
    parser.add_argument("--to", dest="destination", help="upload destination (size budget) of the profile")


def scan(args: argparse.Namespace) -> int | None:
    source = "duplex" if args.duplex else "adf" if args.adf or args.all else "flatbed"
    payload = {"source": source, "multi": args.all}
    payload |= {"mode": "gray"} if args.gray else {}
    payload |= {"destination": args.destination} if args.destination else {}
    code, body = request(args, "POST", "/scan", json=payload)
    if args.json:
        print(_json(body))
    elif code == 200:
        print(body["message"][args.lang])
    if code != 200:
        return fail(body, args.lang)
    return 0 if body.get("ok") and not body.get("fault") else 1  # a fault needs the agent


def scans(args: argparse.Namespace) -> int | None:
    code, body = request(args, "GET", "/scans")
    text = render.render_scans(body) if code == 200 else ""
    if text:
        print(text)
    return 0 if code == 200 else fail(body, args.lang)


def _media_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["export", "eject"])
    parser.add_argument("--all", action="store_true", help="export: every scan of the session (the default)")
    parser.add_argument("files", nargs="*", help="export: the scans to copy (names from `kioskctl scans`)")


def media(args: argparse.Namespace) -> int | None:
    """``media export [--all | NAME…]``, ``media eject``: the citizen's USB stick."""
    if args.action == "eject":
        code, body = request(args, "POST", "/media/eject")
    else:
        payload = {"all": True} if args.all or not args.files else {"files": args.files}
        code, body = request(args, "POST", "/media/export", json=payload)
    if args.json:
        print(_json(body))
    elif code == 200:
        print(body["message"][args.lang])
    if code != 200:
        return fail(body, args.lang)
    return 0 if body.get("ok") else 1  # a full, locked or pulled stick needs the agent


# ---------------------------------------------------------------------------------------------- the van's figures
def _atlas_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weeks", type=float, default=None, help="weeks of samples (default: the profile's)")


def atlas(args: argparse.Namespace) -> int | None:
    code, body = request(args, "GET", "/atlas", params={"weeks": args.weeks} if args.weeks else {})
    return _shown(args, code, body, lambda b: render.render_atlas(b, args.lang))


def panel(args: argparse.Namespace) -> int | None:
    print(panel_url(Path(args.socket).parent, args.lang))
    return None


def panel_url(runtime: Path, lang: Lang) -> str:
    """The panel's link from the files kioskd keeps next to its socket. The token rides in the fragment (after
    ``#``), which the browser never sends: it appears in no log; the page trades it for a cookie at once."""
    try:
        api = json.loads((runtime / "api.json").read_text())
        token = (runtime / "panel-token").read_text().strip()
    except (OSError, ValueError) as exc:
        print(messages.text("cli.not_running", lang, socket=runtime / "kioskd.sock"), f"[{exc}]", file=sys.stderr)
        raise SystemExit(2) from None
    host = api.get("host", "127.0.0.1")
    return f"http://{f'[{host}]' if ':' in host else host}:{api['port']}/#token={token}"


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", help="YYYY-MM (default: this month)")
    parser.add_argument("--csv", action="store_true", help="one line per visit, for a spreadsheet")
    parser.add_argument("--chart", metavar="OUT.png", help="draw visits per stop and per week into a PNG")


def activity_stats(args: argparse.Namespace) -> int | None:
    lang: Lang = args.lang
    params = {"month": args.month} if args.month else {}
    if args.chart or args.csv:
        path = "/stats/chart.png" if args.chart else "/stats.csv"
        try:
            with client(args.socket) as session:
                response = session.get(path, params={**params, "lang": lang})
        except (httpx.ConnectError, FileNotFoundError, PermissionError):
            print(messages.text("cli.not_running", args.lang, socket=args.socket), file=sys.stderr)
            return 2
        if response.status_code != 200:
            return fail(response.json(), lang)
        if args.csv:
            sys.stdout.write(response.text)
            return 0
        try:
            with open(args.chart, "wb") as out:
                out.write(response.content)
        except OSError as exc:
            print(f"kioskctl: {args.chart}: {exc.strerror}", file=sys.stderr)
            return 1
        return 0
    code, body = request(args, "GET", "/stats", params=params)
    if code != 200:
        return fail(body, lang)
    print(_json(body, indent=2) if args.json else stats.render(body, lang))
    return 0


def _receipts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=10)


def receipts(args: argparse.Namespace) -> int | None:
    code, body = request(args, "GET", "/receipts", params={"limit": args.limit})
    if code != 200:
        return fail(body, args.lang)
    text = _json(body, indent=2) if args.json else "\n".join(render.render_receipt(r, args.lang) for r in body)
    if text:
        print(text)
    return None


# --------------------------------------------------------------------------------------------- the technician's
def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--button", type=float, default=0.0, metavar="SECONDS", help="blink the LED and wait for a press"
    )


def doctor(args: argparse.Namespace) -> int | None:
    code, body = request(args, "POST", "/doctor", json={"button_seconds": args.button}, timeout=args.button + 120)
    if code != 200:
        return fail(body, args.lang)
    print(_json(body, indent=2) if args.json else render.render_doctor(body["checks"], args.lang))
    return 0 if body["ok"] else 1


def _update_arguments(parser: argparse.ArgumentParser) -> None:
    update_sub = parser.add_subparsers(dest="update_command", required=True)
    install = update_sub.add_parser("install", help="write an update bundle into the inactive slot")
    install.add_argument("source", help="the bundle file (.raucb) on this PC, or its http(s) URL (with --sha256)")
    install.add_argument("--sha256", default="", help="a URL's bundle's sha256: the download is checked against it")
    install.add_argument("--no-wait", action="store_true", help="return once it is accepted, do not follow it")
    update_sub.add_parser("status", help="running slot and version, and an install's phase")


def update(args: argparse.Namespace) -> int | None:
    """``kioskctl update``: the install is kioskd's (it waits for no citizen); this follows it until it is written."""
    if args.update_command == "status":
        return _shown(args, *request(args, "GET", "/update"), lambda b: _json(b, indent=2))
    source = args.source if "://" in args.source else str(Path(args.source).absolute())
    # the answer comes once RAUC checked the bundle's signature over all its bytes: minutes on a slow PC
    code, body = request(args, "POST", "/update/install", json={"source": source, "sha256": args.sha256},
                         timeout=1800)  # fmt: skip
    if code != 200:
        return fail(body, args.lang) if not args.json else (print(_json(body)) or 1)
    if not args.json:
        print(messages.text("cli.update.started", args.lang, target=body.get("target") or "?", phase=body["phase"]))
    seen: tuple[str, int] = (body["phase"], body.get("progress", 0))
    while not args.no_wait and body["phase"] in ("downloading", "waiting", "installing"):
        time.sleep(1.0)
        code, body = request(args, "GET", "/update")
        if code != 200:
            return fail(body, args.lang)
        now = (body["phase"], body.get("progress", 0))
        if now != seen and not args.json:
            print(f"{body['phase']} {body.get('progress', 0)} % {body.get('step', '')}".rstrip(), flush=True)
        seen = now
    if args.json:
        print(_json(body))
    elif body["phase"] == "ready":
        print(messages.text("update.ready", args.lang, version=body.get("target") or "?"))
    elif body["phase"] == "failed":
        print(messages.text(body.get("error") or "update.failed", args.lang, detail=body.get("step", "")),
              file=sys.stderr)  # fmt: skip
    return 1 if body["phase"] == "failed" else 0


def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    profile_sub = parser.add_subparsers(dest="profile_command", required=True)
    profile_check = profile_sub.add_parser("check", help="every problem of a profile, with its key and line")
    profile_check.add_argument("file")
    profile_show = profile_sub.add_parser("show", help="the effective profile with every default")
    profile_show.add_argument("file", nargs="?", help="default: the installed profile, else the simulated van")
    profile_sub.add_parser("schema", help="the profile reference (Markdown, generated from the code)")


def profile(args: argparse.Namespace) -> int | None:
    """``kioskctl profile``: works on the file itself, without the daemon (a technician checks before installing)."""
    from kioskd.cli import profile_check
    from kioskd.errors import KioskError
    from kioskd.profile import default_profile_path

    if args.profile_command == "schema":
        print(profile_check.schema_markdown(), end="")
        return 0
    path = Path(args.file) if args.file else default_profile_path()
    loaded, problems = profile_check.check(path)
    if args.profile_command == "check" or problems:
        if args.json:
            print(_json([dataclasses.asdict(p) for p in problems]))
        else:
            for problem in problems:
                print(problem.render(path), file=sys.stderr if args.profile_command == "show" else sys.stdout)
            if not problems:
                print(messages.text("cli.profile_ok", args.lang, file=str(path)))
        return 1 if problems else 0
    assert loaded is not None
    try:
        data = profile_check.effective(loaded)
    except KioskError as exc:
        print(f"kioskctl: {exc}", file=sys.stderr)
        return 1
    print(_json(data, indent=2) if args.json else profile_check.to_toml(data), end="")
    return 0


def _sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb")
    parser.add_argument("args", nargs="*")


def sim(args: argparse.Namespace) -> int | None:
    if args.verb == "help":
        code, body = request(args, "GET", "/sim")
        if code != 200:
            return fail(body, args.lang)
        text = render.render_verbs(body)
        if text:
            print(text)
        return None
    return _answer(args, *request(args, "POST", f"/sim/{args.verb}", json={"args": args.args}))


COMMANDS = (
    Command("status", "the whole station at a glance", status),
    Command("start", "start the station", station_command),
    Command("next", "next citizen (wipes the current session)", station_command),
    Command("end-of-day", "wipe and shut the station down", station_command),
    Command("wipe", "the wipe after a failure", wipe, _wipe_arguments),
    Command("events", "follow the station's changes (JSON lines)", events),
    Command("print", "print a PDF for the current citizen", print_file, _print_arguments),
    Command("jobs", "the current citizen's print jobs", jobs),
    Command("scan", "scan for the current citizen into one PDF", scan, _scan_arguments),
    Command("scans", "the current citizen's scans", scans),
    Command("media", "the citizen's USB stick: export the scans to it, eject it", media, _media_arguments),
    Command("privacy", "privacy curtain on the citizen screen", privacy, _privacy_arguments),
    Command(
        "handover", "hand the controls to the citizen (their touchscreen, keyboard, mouse)", handover, _switch_arguments
    ),
    Command(
        "confidential",
        "confidential entry: the citizen types, the agent's screen is hidden and their devices off",
        confidential,
        _switch_arguments,
    ),
    Command("stop", "name the stop the van stands at, for the signal atlas", stop, _stop_arguments),
    Command("atlas", "stops ranked by Internet reachability and median signal", atlas, _atlas_arguments),
    Command("panel", "the agent panel's address, with its token (open it in the browser)", panel),
    Command("stats", "the office's activity figures of a month", activity_stats, _stats_arguments),
    Command("receipts", "the latest wipe receipts", receipts, _receipts_arguments),
    Command("doctor", "self-test of the van: one verdict per device and system fact", doctor, _doctor_arguments),
    Command("update", "A/B updates: install a bundle, or the running version", update, _update_arguments),
    Command("profile", "check or show a vehicle profile (no daemon needed)", profile, _profile_arguments),
    Command("sim", "act on the simulated van (kioskctl sim help)", sim, _sim_arguments),
)


def parser() -> argparse.ArgumentParser:
    """``kioskctl``'s arguments: the global options, then one subcommand per row of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="kioskctl", description="Drive and inspect the van's station.")
    parser.add_argument("--socket", default=str(paths.socket_path()), help="kioskd's API socket ($KIOSKD_SOCKET)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    default_lang = "en" if os.environ.get("KIOSK_LANG", "fr").startswith("en") else "fr"
    parser.add_argument("--lang", choices=["fr", "en"], default=default_lang)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.setup(sub.add_parser(command.name, help=command.help))
    return parser


HANDLERS = {command.name: command.run for command in COMMANDS}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    code = HANDLERS[args.command](args)
    if code is not None:
        raise SystemExit(code)
