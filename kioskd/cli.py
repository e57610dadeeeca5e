"""``kioskctl``: the technician's and agent's command line, a thin client of the API on the unix socket.

It renders the station at a glance (French by default, ``--lang en``) or as JSON; it never talks to hardware."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from kioskd import messages, paths, stats
from kioskd.messages import Lang


def _client(socket_path: str, timeout: float | None = 30.0) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=socket_path), base_url="http://kioskd", timeout=timeout)


def _fail(body: dict[str, Any], lang: Lang) -> int:
    error = body.get("error", {})
    print(error.get(lang) or error.get("what") or json.dumps(body), file=sys.stderr)
    return 1


def _request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    try:
        with _client(args.socket) as client:
            response = client.request(method, path, **kwargs)
    except (httpx.ConnectError, FileNotFoundError, PermissionError) as exc:
        print(messages.text("cli.not_running", args.lang, socket=args.socket), f"[{exc}]", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"what": response.text[:200]}}
    return response.status_code, body


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def render_status(status: dict[str, Any], lang: Lang) -> str:
    """The station at a glance, one line per part."""

    def t(key: str, **params: object) -> str:
        return messages.text(key, lang, **params)

    yes, no = t("word.yes"), t("word.no")
    station = status["station"]
    since = datetime.fromtimestamp(station["since"]).strftime("%H:%M")
    rows: list[tuple[str, str]] = [("station", f"{station[lang]}  [{station['state']}, {since}]")]

    p = status["power"]
    if not p["available"]:
        power = t("word.no_data")
    else:
        parts = [t("word.shore") if p["shore"] else t("word.battery")]
        if p["soc"] is not None:
            parts.append(f"{p['soc']:.0f} %")
        if p["time_to_go"] is not None and not p["shore"]:
            parts.append(f"{_fmt_seconds(p['time_to_go'])} {t('word.left')}")
        if p["voltage"] is not None:
            parts.append(f"{p['voltage']:.1f} V")
        if p["power"] is not None:
            parts.append(f"{p['power']:+.0f} W")
        if p["ignition"]:
            parts.append(t("word.ignition"))
        power = " · ".join(parts)
    rows.append(("power", power))

    m = status["modem"]
    c = status.get("connectivity") or {}
    reachable = c.get("internet", m["internet"])
    internet = "?" if reachable is None else yes if reachable else no
    if c.get("outcome") not in (None, "", "ok"):
        internet += f" ({c['outcome']})"
    if not m["present"]:
        modem = f"{t('word.absent')} · {t('word.internet')} {internet}"
    else:
        signal = "-" if m["signal"] is None else f"{m['signal']} %"
        signal += "" if m.get("rsrp") is None else f" {m['rsrp']:.0f} dBm"
        modem = f"{m['technology'].upper()} · {m['operator'] or '-'} · {m['registration']} · signal {signal}"
        modem += f" · {t('word.internet')} {internet}"
    if c.get("stop"):
        modem += f" · {t('stop.set', stop=c['stop'])}"
    rows.append(("modem", modem))

    d = status["displays"]
    outputs = " ".join(f"{o['role']}:{o['name']}{'✓' if o['connected'] else '✗'}" for o in d["outputs"])
    flags = [t("word.mirror")] if d["mirrored"] else []
    flags += [t("word.curtain")] if d["curtain"] else []
    flags += [] if d["powered"] else [t("word.off")]
    rows.append(("displays", " · ".join([outputs, *flags])))

    s = status["scanner"]
    scanner = f"{s['name']} · {s['status']}" + (f" ({s['fault']})" if s["fault"] else "")
    rows.append(("scanner", scanner if s["present"] else t("word.absent")))
    pr = status["printer"]
    printer = f"{pr['name']} · {pr['status']}" + (f" ({', '.join(pr['reasons'])})" if pr["reasons"] else "")
    rows.append(("printer", printer if pr["present"] else f"{t('word.absent')} · {pr['status']}"))
    b = status["button"]
    rows.append(("button", f"LED {b['led']}" if b["present"] else t("word.absent")))
    a = status["audio"]
    audio = f"{a['sink'] or '-'} · {a['volume']} %" + (f" · {t('word.mic_muted')}" if a["mic_muted"] else "")
    rows.append(("audio", audio if a["present"] else t("word.absent")))
    c = status["camera"]
    rows.append(("camera", c["name"] if c["present"] else t("word.absent")))

    sess = status["session"]
    if sess is None:
        session = t("word.none")
    else:
        session = (
            f"{sess['id']} · {t('word.age')} {_fmt_seconds(sess.get('age'))} · {sess['scans']} {t('word.scans')}"
            f" · {sess['downloads']} {t('word.downloads')} · {sess['print_jobs']} {t('word.prints')}"
            f" · {sess['workspace']}"
        )
    rows.append(("session", session))
    for notice in status["notices"]:
        rows.append(("notices", f"[{notice['level']}] {notice[lang]}"))

    width = max(len(t(f"label.{key}")) for key, _ in rows)
    return "\n".join(f"{t(f'label.{key}'):<{width}}  {value}" for key, value in rows)


def render_receipt(r: dict[str, Any], lang: Lang) -> str:
    """One wipe receipt: when, why, verdict, and each handler's verdict and time."""
    closed = datetime.fromtimestamp(r["closed_at"]).strftime("%Y-%m-%d %H:%M:%S")
    verdict = messages.text("word.yes" if r["verified"] else "word.no", lang)
    handlers = " ".join(f"{h['name']}{'✓' if h['ok'] else '✗'}{h['seconds'] * 1000:.0f}ms" for h in r["handlers"])
    line = (
        f"{closed}  {r['session']}  {r['reason']:<10} ok={verdict}  scans={r['scans']} prints={r['prints']}  {handlers}"
    )
    return line + "".join(f"\n    ! {p}" for p in r["problems"])


def render_atlas(stops: list[dict[str, Any]], lang: Lang) -> str:
    """The atlas as a table: best stop first."""
    if not stops:
        return messages.text("atlas.empty", lang)
    lines = [messages.text("atlas.header", lang)]
    for s in stops:
        signal = "-" if s["median_signal"] is None else f"{s['median_signal']:.0f} %"
        reach = "-" if s["reachability"] is None else f"{s['reachability'] * 100:.0f} %"
        lines.append(f"{s['rank']:>4}  {s['stop'][:24]:<24}  {signal:>6}  {reach:>8}  {s['samples']:>12}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kioskctl", description="Drive and inspect the van's station.")
    parser.add_argument("--socket", default=str(paths.socket_path()), help="kioskd's API socket ($KIOSKD_SOCKET)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    default_lang = "en" if os.environ.get("KIOSK_LANG", "fr").startswith("en") else "fr"
    parser.add_argument("--lang", choices=["fr", "en"], default=default_lang)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="the whole station at a glance")
    sub.add_parser("start", help="start the station")
    sub.add_parser("next", help="next citizen (wipes the current session)")
    sub.add_parser("end-of-day", help="wipe and shut the station down")
    wipe = sub.add_parser("wipe", help="the wipe after a failure")
    wipe.add_argument("--retry", action="store_true", required=True)
    sub.add_parser("events", help="follow the station's changes (JSON lines)")
    printing = sub.add_parser("print", help="print a PDF for the current citizen")
    printing.add_argument("file")
    sub.add_parser("jobs", help="the current citizen's print jobs")
    scan = sub.add_parser("scan", help="scan for the current citizen into one PDF")
    scan.add_argument("--adf", action="store_true", help="from the feeder (default: flatbed)")
    scan.add_argument("--all", action="store_true", help="the whole feeder stack into one PDF")
    scan.add_argument("--duplex", action="store_true", help="from the feeder, both sides of each sheet")
    scan.add_argument("--gray", action="store_true", help="grey instead of the profile's mode")
    scan.add_argument("--to", dest="destination", help="upload destination (size budget) of the profile")
    sub.add_parser("scans", help="the current citizen's scans")
    privacy = sub.add_parser("privacy", help="privacy curtain on the citizen screen")
    privacy.add_argument("switch", choices=["on", "off", "toggle"])
    stop = sub.add_parser("stop", help="name the stop the van stands at, for the signal atlas")
    stop.add_argument("name", nargs="?", help="the stop's name (none: the van left its stop)")
    atlas = sub.add_parser("atlas", help="stops ranked by Internet reachability and median signal")
    atlas.add_argument("--weeks", type=float, default=None, help="weeks of samples (default: the profile's)")
    sub.add_parser("panel", help="the agent panel's address, with its token (open it in the browser)")
    stats_cmd = sub.add_parser("stats", help="the office's activity figures of a month")
    stats_cmd.add_argument("--month", help="YYYY-MM (default: this month)")
    stats_cmd.add_argument("--csv", action="store_true", help="one line per visit, for a spreadsheet")
    stats_cmd.add_argument("--chart", metavar="OUT.png", help="draw visits per stop and per week into a PNG")
    receipts = sub.add_parser("receipts", help="the latest wipe receipts")
    receipts.add_argument("--limit", type=int, default=10)
    doctor = sub.add_parser("doctor", help="self-test of the van: one verdict per device and system fact")
    doctor.add_argument(
        "--button", type=float, default=0.0, metavar="SECONDS", help="blink the LED and wait for a press"
    )
    profile = sub.add_parser("profile", help="check or show a vehicle profile (no daemon needed)")
    profile_sub = profile.add_subparsers(dest="profile_command", required=True)
    profile_check = profile_sub.add_parser("check", help="every problem of a profile, with its key and line")
    profile_check.add_argument("file")
    profile_show = profile_sub.add_parser("show", help="the effective profile with every default")
    profile_show.add_argument("file", nargs="?", help="default: the installed profile, else the simulated van")
    profile_sub.add_parser("schema", help="the profile reference (Markdown, generated from the code)")
    sim = sub.add_parser("sim", help="act on the simulated van (kioskctl sim help)")
    sim.add_argument("verb")
    sim.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    lang: Lang = args.lang

    if args.command == "doctor":
        code, body = _request(args, "POST", "/doctor", json={"button_seconds": args.button}, timeout=args.button + 120)
        if code != 200:
            raise SystemExit(_fail(body, lang))
        print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else render_doctor(body["checks"], lang))
        raise SystemExit(0 if body["ok"] else 1)
    if args.command == "profile":
        raise SystemExit(_profile(args))
    if args.command == "status":
        code, body = _request(args, "GET", "/status")
        if code != 200:
            raise SystemExit(_fail(body, lang))
        print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else render_status(body, lang))
        return
    if args.command == "events":
        _follow(args)
        return
    if args.command == "panel":
        print(_panel_url(Path(args.socket).parent, args.lang))
        return
    if args.command == "stats":
        raise SystemExit(_stats(args, lang))
    if args.command == "scan":
        source = "duplex" if args.duplex else "adf" if args.adf or args.all else "flatbed"
        payload = {"source": source, "multi": args.all}
        payload |= {"mode": "gray"} if args.gray else {}
        payload |= {"destination": args.destination} if args.destination else {}
        code, body = _request(args, "POST", "/scan", json=payload)
        if args.json:
            print(json.dumps(body, ensure_ascii=False))
        elif code == 200:
            print(body["message"][lang])
        if code != 200:
            raise SystemExit(_fail(body, lang))
        raise SystemExit(0 if body.get("ok") and not body.get("fault") else 1)  # a fault needs the agent
    if args.command == "scans":
        code, body = _request(args, "GET", "/scans")
        for scan_file in body if code == 200 else []:
            print(f"{scan_file['file']}  {scan_file['bytes'] / 1000:.0f} kB")
        raise SystemExit(0 if code == 200 else _fail(body, lang))
    if args.command in ("jobs", "receipts"):
        params = {"limit": args.limit} if args.command == "receipts" else {}
        code, body = _request(args, "GET", f"/{args.command}", params=params)
        if code != 200:
            raise SystemExit(_fail(body, lang))
        if args.json:
            print(json.dumps(body, indent=2, ensure_ascii=False))
        elif args.command == "jobs":
            for job in body:
                print(f"{job['id']:>5}  {job['title']:<28} {job['state']:<11} {' '.join(job['reasons'])}")
        else:
            for r in body:
                print(render_receipt(r, lang))
        return
    if args.command == "atlas":
        code, body = _request(args, "GET", "/atlas", params={"weeks": args.weeks} if args.weeks else {})
        if code != 200:
            raise SystemExit(_fail(body, lang))
        print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else render_atlas(body, lang))
        return
    if args.command == "stop":
        code, body = _request(args, "POST", "/stop", json={"name": args.name})
        if code != 200:
            raise SystemExit(_fail(body, lang))
        if args.json:
            print(json.dumps(body, ensure_ascii=False))
        else:
            print(
                messages.text("stop.set", lang, stop=body["stop"])
                if body["stop"]
                else messages.text("stop.cleared", lang)
            )
        return
    if args.command == "sim" and args.verb == "help":
        code, body = _request(args, "GET", "/sim")
        if code != 200:
            raise SystemExit(_fail(body, lang))
        for verb, help_text in body.items():
            print(f"  {verb:<10} {help_text}")
        return
    if args.command == "print":
        try:
            with open(args.file, "rb") as document:
                data = document.read()
        except OSError as exc:
            print(f"kioskctl: {args.file}: {exc.strerror}", file=sys.stderr)
            raise SystemExit(1) from None
        code, body = _request(args, "POST", "/print", content=data, headers={"content-type": "application/pdf"})
    elif args.command == "sim":
        code, body = _request(args, "POST", f"/sim/{args.verb}", json={"args": args.args})
    elif args.command == "privacy":
        code, body = _request(args, "POST", "/privacy", json={"on": {"on": True, "off": False}.get(args.switch)})
        if code == 200 and not args.json:
            print(messages.text("word.curtain" if body["curtain"] else "word.mirror", lang))
            return
    elif args.command == "wipe":
        code, body = _request(args, "POST", "/wipe/retry")
    else:
        code, body = _request(args, "POST", f"/{args.command}")
    if args.json:
        print(json.dumps(body, ensure_ascii=False))
    elif code == 200:
        print(body.get("detail") or body.get("state"))
    if code != 200:
        raise SystemExit(_fail(body, lang) if not args.json else 1)


def render_doctor(checks: list[dict[str, Any]], lang: Lang) -> str:
    """One table: check, verdict, what it reports, what to do."""
    rows = [
        (
            c["name"],
            messages.text(f"doctor.verdict.{c['verdict']}", lang),
            c["detail"],
            c.get("action", {}).get(lang, ""),
        )
        for c in checks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{name:<{widths[0]}}  {verdict:<{widths[1]}}  {detail:<{widths[2]}}  {action}".rstrip()
        for name, verdict, detail, action in rows
    )


def _profile(args: argparse.Namespace) -> int:
    """``kioskctl profile``: works on the file itself, without the daemon (a technician checks before installing)."""
    from pathlib import Path

    from kioskd import profile_check
    from kioskd.errors import KioskError
    from kioskd.profile import default_profile_path

    if args.profile_command == "schema":
        print(profile_check.schema_markdown(), end="")
        return 0
    path = Path(args.file) if args.file else default_profile_path()
    loaded, problems = profile_check.check(path)
    if args.profile_command == "check" or problems:
        if args.json:
            print(json.dumps([dataclasses.asdict(p) for p in problems], ensure_ascii=False))
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
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else profile_check.to_toml(data), end="")
    return 0


def _panel_url(runtime: Path, lang: Lang) -> str:
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


def _stats(args: argparse.Namespace, lang: Lang) -> int:
    params = {"month": args.month} if args.month else {}
    if args.chart or args.csv:
        path = "/stats/chart.png" if args.chart else "/stats.csv"
        try:
            with _client(args.socket) as client:
                response = client.get(path, params={**params, "lang": lang})
        except (httpx.ConnectError, FileNotFoundError, PermissionError):
            print(messages.text("cli.not_running", args.lang, socket=args.socket), file=sys.stderr)
            return 2
        if response.status_code != 200:
            return _fail(response.json(), lang)
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
    code, body = _request(args, "GET", "/stats", params=params)
    if code != 200:
        return _fail(body, lang)
    print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else stats.render(body, lang))
    return 0


def _follow(args: argparse.Namespace) -> None:
    try:
        with _client(args.socket, timeout=None) as client, client.stream("GET", "/events") as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    print(line.removeprefix("data: "), flush=True)
    except KeyboardInterrupt:
        pass
    except httpx.ConnectError:
        print(messages.text("cli.not_running", args.lang, socket=args.socket), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
