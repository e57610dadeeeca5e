"""The office's activity figures: visits per stop, per week and per hour of a month, and their chart (old figures
are deleted by ``retention``). It reads the store's visit rows only (stops, times, counts): nothing about a citizen.
matplotlib is imported only when a chart is drawn (it costs half a second)."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kioskd import messages
from kioskd.messages import Lang

if TYPE_CHECKING:  # kioskctl renders figures too: it must not pay for pydantic and the HAL
    from kioskd.records.store import Activity

log = logging.getLogger(__name__)

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
BUSIEST = 3  # hours named as the busiest


def local_slot(at: float, timezone: str) -> tuple[str, int]:
    """The local day (YYYY-MM-DD) and hour of the epoch time ``at`` in the van's time zone."""
    moment = datetime.fromtimestamp(at, ZoneInfo(timezone))
    return moment.date().isoformat(), moment.hour


def month_of(at: float, timezone: str) -> str:
    """The local month (YYYY-MM) of ``at``."""
    return local_slot(at, timezone)[0][:7]


def _week(day: str) -> tuple[str, str]:
    """(ISO week "2026-W45", its Monday "2026-11-02") of a date."""
    when = date.fromisoformat(day)
    year, week, weekday = when.isocalendar()
    return f"{year}-W{week:02d}", (when - timedelta(days=weekday - 1)).isoformat()


def summarize(month: str, visits: Iterable[Activity]) -> dict[str, Any]:
    """The month's figures as the API serves them: totals, per stop, per week, per hour, per end reason."""
    rows = list(visits)
    per_stop: dict[str | None, list[Activity]] = {}
    for row in rows:
        per_stop.setdefault(row.stop, []).append(row)
    weeks = Counter(_week(row.day) for row in rows)
    hours = Counter(row.hour for row in rows)
    busiest = sorted(hours.items(), key=lambda item: (-item[1], item[0]))[:BUSIEST]
    return {
        "month": month,
        "visits": len(rows),
        "mean_minutes": _mean_minutes(rows),
        "scans": sum(row.scans for row in rows),
        "prints": sum(row.prints for row in rows),
        "handovers": sum(row.handovers for row in rows),
        "handover_minutes": round(sum(row.handover_seconds for row in rows) / 60, 1),
        "confidential": sum(row.confidential for row in rows),
        "confidential_minutes": round(sum(row.confidential_seconds for row in rows) / 60, 1),
        "per_stop": [
            {"stop": stop, "visits": len(of_stop), "mean_minutes": _mean_minutes(of_stop)}
            for stop, of_stop in sorted(per_stop.items(), key=lambda item: (-len(item[1]), item[0] or ""))
        ],
        "per_week": [
            {"week": week, "monday": monday, "visits": count} for (week, monday), count in sorted(weeks.items())
        ],
        "per_hour": [{"hour": hour, "visits": count} for hour, count in sorted(hours.items())],
        "busiest_hours": [{"hour": hour, "visits": count} for hour, count in busiest],
        "per_reason": dict(sorted(Counter(row.reason for row in rows).items())),
    }


def _mean_minutes(rows: list[Activity]) -> float | None:
    return round(sum(row.seconds for row in rows) / len(rows) / 60, 1) if rows else None


def _stop_label(stop: str | None, lang: Lang) -> str:
    return stop if stop is not None else messages.text("stats.no_stop", lang)


def _week_label(week: dict[str, Any], lang: Lang) -> str:
    monday = date.fromisoformat(week["monday"])
    number = week["week"].split("-W")[1]
    return messages.text("stats.week", lang, week=number, monday=monday.strftime("%d/%m" if lang == "fr" else "%m-%d"))


def render(summary: dict[str, Any], lang: Lang) -> str:
    """The month's figures as ``kioskctl stats`` prints them."""

    def t(key: str, **params: object) -> str:
        return messages.text(key, lang, **params)

    if not summary["visits"]:
        return t("stats.empty", month=summary["month"])
    lines = [
        t(
            "stats.title",
            month=summary["month"],
            visits=summary["visits"],
            minutes=_number(summary["mean_minutes"], lang),
            scans=summary["scans"],
            prints=summary["prints"],
        ),
        t("stats.per_stop"),
    ]
    width = max(len(_stop_label(s["stop"], lang)) for s in summary["per_stop"])
    for stop in summary["per_stop"]:
        mean = t("stats.mean", minutes=_number(stop["mean_minutes"], lang))
        lines.append(f"  {_stop_label(stop['stop'], lang):<{width}}  {stop['visits']:>5}  {mean}")
    lines.append(t("stats.per_week"))
    for week in summary["per_week"]:
        lines.append(f"  {_week_label(week, lang):<16}  {week['visits']:>5}")
    if summary.get("handovers") or summary.get("confidential"):
        lines.append(
            t(
                "stats.handover",
                handovers=summary["handovers"],
                handover_minutes=_number(summary["handover_minutes"], lang),
                confidential=summary["confidential"],
                confidential_minutes=_number(summary["confidential_minutes"], lang),
            )
        )
    busiest = ", ".join(t("stats.hour", hour=h["hour"], visits=h["visits"]) for h in summary["busiest_hours"])
    lines.append(t("stats.busiest", hours=busiest))
    return "\n".join(lines)


def _number(value: float | None, lang: Lang) -> str:
    if value is None:
        return "-"
    text = f"{value:.1f}"
    return text.replace(".", ",") if lang == "fr" else text


CSV_COLUMNS = ("day", "hour", "stop", "minutes", "scans", "prints", "reason")


def to_csv(visits: Iterable[Activity], lang: Lang) -> str:
    """One line per visit for the office's spreadsheet: French spreadsheets read ``;`` and decimal commas."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if lang == "fr" else ",", lineterminator="\n")
    writer.writerow([messages.text(f"stats.column.{column}", lang) for column in CSV_COLUMNS])
    for row in visits:
        minutes = _number(round(row.seconds / 60, 1), lang)
        writer.writerow([row.day, row.hour, row.stop or "", minutes, row.scans, row.prints, row.reason])
    return out.getvalue()


def chart_png(summary: dict[str, Any], lang: Lang) -> bytes:
    """Visits per stop and per week as a PNG (matplotlib's Agg canvas: no display, safe off the main thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    by_stop, by_week = figure.subplots(1, 2)
    stops = list(reversed(summary["per_stop"]))  # barh draws bottom-up: the busiest stop on top
    by_stop.barh([_stop_label(s["stop"], lang) for s in stops], [s["visits"] for s in stops], color="#000091")
    by_stop.set_title(messages.text("stats.chart.per_stop", lang, month=summary["month"]))
    by_stop.set_xlabel(messages.text("stats.chart.visits", lang))
    weeks = summary["per_week"]
    by_week.bar([_week_label(w, lang) for w in weeks], [w["visits"] for w in weeks], color="#e1000f")
    by_week.set_title(messages.text("stats.chart.per_week", lang, month=summary["month"]))
    by_week.set_ylabel(messages.text("stats.chart.visits", lang))
    by_week.tick_params(axis="x", labelrotation=30)
    by_stop.xaxis.set_major_locator(MaxNLocator(integer=True))  # visits are whole
    by_week.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not summary["visits"]:
        figure.suptitle(messages.text("stats.empty", lang, month=summary["month"]))
    out = io.BytesIO()
    FigureCanvasAgg(figure)  # the Agg canvas: no display needed
    figure.savefig(out, format="png")
    return out.getvalue()
