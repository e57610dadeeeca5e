"""What ``kioskctl`` prints for people: the station at a glance, receipts, the atlas, the doctor's table and the
short answers of commands, in French by default or English (``--lang en``). Pure text from the API's JSON: this room
sends no request and prints nothing itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kioskd import messages
from kioskd.messages import Lang


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


UPLINK_MARK = {"ok": "✓", "": "-"}  # a probe's outcome in one sign: passes, not probed, else fails
PROBE_WORD = {o: f"uplink.probe.{o}" for o in ("ok", "unreachable", "wrong-status", "dns-failed")}


def uplink_lines(modem: dict[str, Any], connectivity: dict[str, Any], lang: Lang) -> list[str]:
    """One line per uplink, in the profile's order: name, operator, interface, signal, its probe, and whether it
    carries the traffic or waits in its SIM slot (nothing with one uplink: the network line says it all)."""
    probes = {p["name"]: p for p in connectivity.get("uplinks", [])}
    lines = []
    for u in modem.get("uplinks", []):
        probe = probes.get(u["name"], {})
        outcome = probe.get("outcome", "")
        signal = "" if u.get("signal") is None else f" {u['signal']} %"
        radio = (
            u["kind"] if u["kind"] != "gsm" else "-" if u["technology"] == "none" else u["technology"].upper() + signal
        )
        if u.get("standby"):
            said = f"- {messages.text('uplink.standby', lang, slot=u['sim_slot'])}"
        else:
            said = (
                f"{UPLINK_MARK.get(outcome, '✗')} {messages.text(PROBE_WORD.get(outcome, 'uplink.probe.none'), lang)}"
            )
        line = f"{u['name']} · {u['operator'] or '-'} · {u['interface'] or '-'} · {radio} · {said}"
        if u["name"] == connectivity.get("uplink"):
            line += f" · {messages.text('uplink.used', lang)}"
        lines.append(line)
    return lines if len(lines) > 1 else []


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
            parts.append(f"{fmt_seconds(p['time_to_go'])} {t('word.left')}")
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
    if c.get("uplink"):
        modem += f" · {t('uplink.in_use', uplink=c['uplink'])}"
        modem += "".join(f" [{u['name']} {UPLINK_MARK.get(u['outcome'], '✗')}]" for u in c.get("uplinks", []))
    if c.get("stop"):
        modem += f" · {t('stop.set', stop=c['stop'])}"
    rows.append(("modem", modem))
    rows += [("uplink", line) for line in uplink_lines(m, c, lang)]

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
    inputs, handover = status.get("inputs"), status.get("handover") or {}
    if inputs is not None and inputs["devices"]:
        citizen = [d for d in inputs["devices"] if d["side"] == "citizen"]
        key = (
            "handover.confidential"
            if handover.get("confidential")
            else "handover.on"
            if handover.get("handover")
            else "handover.off"
        )
        rows.append(("inputs", f"{len(citizen)} · {t(key)}"))

    media = status.get("media")
    if media is not None:  # label, size, file system, state: never a name found on the stick
        for stick in media["sticks"] or [None]:
            if stick is None:
                rows.append(("media", t("panel.media.none")))
                continue
            line = f"{stick['label'] or '—'} · {stick['size_text'][lang]} · {stick['filesystem']}"
            line += f" · {t('media.state.' + stick['mounted'])}" + (f" ({stick['fault']})" if stick["fault"] else "")
            rows.append(("media", line))

    sess = status["session"]
    if sess is None:
        session = t("word.none")
    else:
        session = (
            f"{sess['id']} · {t('word.age')} {fmt_seconds(sess.get('age'))} · {sess['scans']} {t('word.scans')}"
            f" · {sess['downloads']} {t('word.downloads')} · {sess['print_jobs']} {t('word.prints')}"
            f" · {sess['workspace']}"
        )
    rows.append(("session", session))
    u = status.get("update") or {}
    if u.get("available"):
        update = t("update.status", version=u.get("version") or "?", slot=(u.get("slot") or "?").upper())
        if u.get("phase") in ("downloading", "waiting", "installing", "ready", "failed"):
            update += " · " + t("update.status.phase", target=u.get("target") or "?", phase=u["phase"],
                                progress=u.get("progress", 0))  # fmt: skip
        rows.append(("update", update))
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
        # per uplink: "at Domme, SFR works and Orange does not" (a link works when most of its probes pass)
        said = []
        for u in s.get("uplinks", []):
            if u["reachability"] is None:
                continue
            key = "atlas.uplink.works" if u["reachability"] >= 0.5 else "atlas.uplink.fails"
            operator = u["operator"] or u["uplink"]
            said.append(messages.text(key, lang, operator=operator, reach=f"{u['reachability'] * 100:.0f}"))
            if u.get("visio") is not None:
                said[-1] += ", " + messages.text("atlas.uplink.visio", lang, visio=f"{u['visio'] * 100:.0f}")
        if said:
            lines.append("      " + " · ".join(said))
    return "\n".join(lines)


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


def render_jobs(jobs: list[dict[str, Any]]) -> str:
    """The current citizen's print jobs, one line each."""
    return "\n".join(
        f"{job['id']:>5}  {job['title']:<28} {job['state']:<11} {' '.join(job['reasons'])}" for job in jobs
    )


def render_scans(scans: list[dict[str, Any]]) -> str:
    """The current citizen's scans, one line each: file and size."""
    return "\n".join(f"{scan['file']}  {scan['bytes'] / 1000:.0f} kB" for scan in scans)


def render_verbs(verbs: dict[str, str]) -> str:
    """The simulated van's verbs and what each does."""
    return "\n".join(f"  {verb:<10} {help_text}" for verb, help_text in verbs.items())


def render_stop(body: dict[str, Any], lang: Lang) -> str:
    """The stop the van now stands at, or that it left."""
    return messages.text("stop.set", lang, stop=body["stop"]) if body["stop"] else messages.text("stop.cleared", lang)


def render_handover(body: dict[str, Any], lang: Lang) -> str:
    """Who has the controls after a hand-over or confidential-entry command."""
    handover = body["handover"]
    key = (
        "handover.confidential"
        if handover["confidential"]
        else "handover.on"
        if handover["handover"]
        else "handover.off"
    )
    return messages.text(key, lang)


def render_curtain(body: dict[str, Any], lang: Lang) -> str:
    """The citizen screen after a privacy command: the curtain, or the mirror of the agent's screen."""
    return messages.text("word.curtain" if body["curtain"] else "word.mirror", lang)
