"""The office's activity figures: one visit row per session (stop, local day and hour, duration, counts, end reason),
their aggregation per stop, week and hour, the text, CSV and chart renderings, and the retention on the clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from kioskd.api import create_app
from kioskd.clock import ManualClock
from kioskd.errors import WipeError
from kioskd.profile import ActivityConfig
from kioskd.records import stats
from kioskd.records.retention import Retention, cutoff
from kioskd.records.stats import summarize
from kioskd.records.store import Activity, Receipt, Store
from tests.conftest import Rig, make_rig, sim_profile

PARIS = ZoneInfo("Europe/Paris")


def epoch(text: str) -> float:
    """A Paris local time ("2026-11-03 09:15") as epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=PARIS).timestamp()


def visit(
    when: str, stop: str | None, minutes: float, reason: str = "next", scans: int = 0, prints: int = 0
) -> Activity:
    day, hour = stats.local_slot(epoch(when), "Europe/Paris")
    return Activity(stop, day, hour, epoch(when), minutes * 60, scans, prints, reason)


NOVEMBER = [
    visit("2026-11-02 09:10", "Ribérac", 20, scans=2, prints=1),  # Monday of ISO week 45
    visit("2026-11-02 09:40", "Ribérac", 40),
    visit("2026-11-04 14:05", "Mussidan", 30, reason="idle", prints=3),
    visit("2026-11-09 09:55", "Ribérac", 10),  # week 46
    visit("2026-11-10 14:30", None, 20, reason="end_of_day", scans=1),
    visit("2026-11-30 10:00", "Mussidan", 60),  # week 49, the month's last Monday
]


def test_summary_counts_visits_per_stop_week_and_hour_with_the_mean_duration() -> None:
    summary = summarize("2026-11", NOVEMBER)
    assert summary["visits"] == 6
    assert summary["mean_minutes"] == 30.0
    assert (summary["scans"], summary["prints"]) == (3, 4)
    assert summary["per_stop"] == [
        {"stop": "Ribérac", "visits": 3, "mean_minutes": 23.3},
        {"stop": "Mussidan", "visits": 2, "mean_minutes": 45.0},
        {"stop": None, "visits": 1, "mean_minutes": 20.0},
    ]
    assert summary["per_week"] == [
        {"week": "2026-W45", "monday": "2026-11-02", "visits": 3},
        {"week": "2026-W46", "monday": "2026-11-09", "visits": 2},
        {"week": "2026-W49", "monday": "2026-11-30", "visits": 1},
    ]
    # 9 h: three visits; 14 h: two; 10 h: one (ties would go to the earlier hour)
    assert summary["busiest_hours"] == [
        {"hour": 9, "visits": 3},
        {"hour": 14, "visits": 2},
        {"hour": 10, "visits": 1},
    ]
    assert summary["per_reason"] == {"end_of_day": 1, "idle": 1, "next": 4}


def test_a_month_without_visits_says_so_instead_of_dividing_by_zero() -> None:
    summary = summarize("2026-08", [])
    assert summary["visits"] == 0 and summary["mean_minutes"] is None
    assert stats.render(summary, "fr") == "Aucune visite enregistrée en 2026-08"


def test_text_is_french_first_and_english_on_request() -> None:
    summary = summarize("2026-11", NOVEMBER)
    french = stats.render(summary, "fr")
    assert french.splitlines()[0] == (
        "Activité 2026-11 : 6 visite(s), durée moyenne 30,0 min, 3 scan(s), 4 impression(s)"
    )
    assert "S45 (lun. 02/11)" in french and "(arrêt non renseigné)" in french
    assert french.splitlines()[-1] == "Heures les plus chargées : 9 h (3), 14 h (2), 10 h (1)"
    english = stats.render(summary, "en")
    assert english.splitlines()[-1] == "Busiest hours: 9:00 (3), 14:00 (2), 10:00 (1)"
    assert "W45 (Mon 11-02)" in english


def test_csv_has_one_line_per_visit_in_the_spreadsheet_dialect_of_the_language() -> None:
    french = stats.to_csv(NOVEMBER[:2], "fr").splitlines()
    assert french[0] == "date;heure;arrêt;durée (min);scans;impressions;fin"
    assert french[1] == "2026-11-02;9;Ribérac;20,0;2;1;next"
    english = stats.to_csv(NOVEMBER[4:5], "en").splitlines()
    assert english == ["date,hour,stop,duration (min),scans,prints,end", "2026-11-10,14,,20.0,1,0,end_of_day"]


def test_chart_is_a_png_drawn_without_a_display() -> None:
    png = stats.chart_png(summarize("2026-11", NOVEMBER), "fr")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert stats.chart_png(summarize("2026-08", []), "en").startswith(b"\x89PNG")


def test_retention_cutoff_counts_months_back_and_clamps_the_day() -> None:
    config = ActivityConfig(retention_months=13)
    assert cutoff(epoch("2027-12-15 10:00"), config)[0] == "2026-11-15"
    assert cutoff(epoch("2027-03-31 10:00"), ActivityConfig(retention_months=1))[0] == "2027-02-28"
    day, midnight = cutoff(epoch("2028-01-05 08:00"), ActivityConfig(retention_months=2))
    assert day == "2027-11-05" and midnight == epoch("2027-11-05 00:00")


def test_profile_refuses_an_unknown_time_zone() -> None:
    from kioskd.errors import ProfileError

    with pytest.raises(ProfileError) as err:
        sim_profile(activity={"timezone": "Europe/Périgueux"})
    assert "activity.timezone" in err.value.where and "unknown time zone" in err.value.what


# --------------------------------------------------------------------------------------------------- with a station
async def test_each_session_leaves_one_visit_row_with_stop_local_hour_duration_and_counts(tmp_path: Path) -> None:
    clock = ManualClock(start_wall=epoch("2026-11-03 08:40"))
    rig = await _rig_on(tmp_path, clock)
    rig.station.set_stop("Ribérac")  # the agent names the stop (kioskctl stop)
    await rig.station.start()
    await rig.station.next_citizen()
    session = rig.station.session
    assert session is not None
    (session.workspace.scans / "scan-1.pdf").write_bytes(b"%PDF-1.4")
    await rig.station.print_document(b"%PDF-1.4 one page")
    await rig.run(10 * 60, step=30)
    rig.station.touch()  # the agent works with the citizen: no idle wipe
    await rig.run(10 * 60, step=30)
    await rig.drive(rig.station.next_citizen())  # closes the first visit, opens a second one
    rig.station.set_stop(None)
    await rig.run(5 * 60, step=30)
    await rig.drive(rig.station.end_of_day())
    visits = await rig.station.store.activity("2026-11")  # type: ignore[union-attr]
    assert len(visits) == 2
    first, second = visits
    assert (first.stop, first.day, first.hour, first.scans, first.prints, first.reason) == (
        "Ribérac", "2026-11-03", 8, 1, 1, "next",
    )  # fmt: skip
    assert 20 * 60 <= first.seconds <= 20 * 60 + 30
    assert second.stop == "Ribérac", "the stop is the one where the citizen was welcomed"
    assert (second.hour, second.reason, second.scans, second.prints) == (9, "end_of_day", 0, 0)


async def test_a_failed_wipe_and_its_retry_count_one_visit(tmp_path: Path) -> None:
    rig = await _rig_on(tmp_path, ManualClock(start_wall=epoch("2026-11-03 10:00")))
    await rig.station.start()
    await rig.station.next_citizen()
    await rig.sim("printer", "stuck")
    with pytest.raises(WipeError):
        await rig.station.next_citizen()
    await rig.sim("printer", "unstuck")
    outcome = await rig.drive(rig.station.retry_wipe())
    assert outcome is not None and outcome.verified
    assert len(await Store(rig.state_dir / "kioskd.sqlite").receipts(10)) == 2
    visits = await rig.station.store.activity("2026-11")  # type: ignore[union-attr]
    assert [v.reason for v in visits] == ["next"]


async def test_stats_endpoints_serve_the_month_its_csv_and_its_chart(tmp_path: Path) -> None:
    rig = await _rig_on(tmp_path, ManualClock(start_wall=epoch("2026-11-03 10:00")))
    store = rig.station.store
    assert store is not None
    for row in NOVEMBER:
        await store.add_receipt(Receipt("x", row.opened_at, row.opened_at + row.seconds, row.reason, True, [], []), row)
    transport = httpx.ASGITransport(app=create_app(rig.station))
    async with httpx.AsyncClient(transport=transport, base_url="http://kioskd") as client:
        summary = (await client.get("/stats")).json()  # this month, in the van's time zone
        assert summary["month"] == "2026-11" and summary["visits"] == 6
        assert (await client.get("/stats", params={"month": "2026-10"})).json()["visits"] == 0
        bad = await client.get("/stats", params={"month": "2026-13"})
        assert bad.status_code == 400 and "month" in bad.json()["error"]["what"]
        csv = await client.get("/stats.csv", params={"month": "2026-11", "lang": "en"})
        assert csv.headers["content-type"].startswith("text/csv") and len(csv.text.splitlines()) == 7
        chart = await client.get("/stats/chart.png", params={"month": "2026-11"})
        assert chart.headers["content-type"] == "image/png" and chart.content.startswith(b"\x89PNG")
    await _close(rig)


async def test_retention_deletes_old_visits_and_receipts_at_start_and_then_daily(tmp_path: Path) -> None:
    clock = ManualClock(start_wall=epoch("2027-12-15 12:00"))
    rig = await _rig_on(tmp_path, clock)
    uptime = [-3 * 24 * 3600.0]  # the rows were written three days of uptime ago (the last day's are never deleted)
    store = Store(tmp_path / "retention.sqlite", uptime=lambda: uptime[0] + clock.monotonic())
    old, kept = visit("2026-11-14 10:00", "Ribérac", 20), visit("2026-11-16 10:00", "Ribérac", 20)
    for row in (old, kept):
        await store.add_receipt(Receipt("x", row.opened_at, row.opened_at + 1200, "next", True, [], []), row)
    uptime[0] = 0.0
    retention = Retention(store, ActivityConfig(retention_months=13), clock)
    await retention.start()
    assert [v.day for v in await store.activity("2026-11")] == ["2026-11-16"]
    assert retention.last == {"activity": 1, "receipts": 1, "outbox": 0}
    await clock.advance(24 * 3600 + 1)  # a day later the cut-off is the 16th: the row of the 16th stays
    assert retention._task is not None
    assert await retention._task == {"activity": 0, "receipts": 0, "outbox": 0}
    await clock.advance(24 * 3600)  # two days later it goes
    assert await retention._task == {"activity": 1, "receipts": 1, "outbox": 0}
    assert await store.activity("2026-11") == []
    assert len(await store.receipts(10)) == 0
    retention.close()
    await _close(rig)


async def _rig_on(tmp_path: Path, clock: ManualClock) -> Rig:
    return await make_rig(tmp_path, clock=clock)


async def _close(rig: Rig) -> None:
    await rig.station.close()
    for _, device in rig.devices.all():
        await device.close()
