"""Regions and calendars through the API: 14 days of opening times, closures, special hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from router.runtime import Runtime
from router.store.models import AuditEntry, CalendarOverride
from tests.functional.api.conftest import ApiClient


def upcoming(weekday: int, at_least: int = 10) -> date:
    """Return a date at least ``at_least`` days ahead falling on ``weekday`` (0 = Monday)."""
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=at_least)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def test_list_regions(api: ApiClient) -> None:
    page = api.get("regions", role="viewer").get_json()
    assert page["total"] == 10 and {r["key"] for r in page["items"]} >= {"us", "il", "in"}
    israel = api.get("regions", role="viewer", query={"country": "IL"}).get_json()["items"]
    assert [r["key"] for r in israel] == ["il"]
    assert israel[0]["working_days"] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Sunday"]
    assert isinstance(israel[0]["open_now"], bool) and israel[0]["next_open_at"]
    assert api.get("regions", role="viewer", query={"per_page": 3}).get_json()["pages"] == 4


def test_fourteen_days_of_opening_times(api: ApiClient) -> None:
    default = api.get("regions/us", role="viewer").get_json()
    assert len(default["days"]) == 14
    today = datetime.now(ZoneInfo("America/New_York")).date()
    assert default["days"][0]["date"] == today.isoformat()

    christmas = api.get(
        "regions/us", role="viewer", query={"start": "2026-12-21", "days": 14}
    ).get_json()
    days = {day["date"]: day for day in christmas["days"]}
    assert days["2026-12-25"]["source"] == "holiday" and days["2026-12-25"]["open"] is False
    assert "Christmas" in days["2026-12-25"]["holiday"]
    assert days["2026-12-26"]["source"] == "weekend"
    monday = days["2026-12-21"]
    assert monday["source"] == "weekly" and monday["hours"] == [["09:00", "17:00"]]
    assert monday["intervals"] == [
        {"start_at": "2026-12-21T14:00:00+00:00", "end_at": "2026-12-21T22:00:00+00:00"}
    ]
    # Israel works Sunday to Thursday.
    israel = api.get(
        "regions/il", role="viewer", query={"start": "2026-11-01", "days": 7}
    ).get_json()
    open_days = [day["weekday"] for day in israel["days"] if day["open"]]
    assert open_days == ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday"]

    assert api.get("regions/xx", role="viewer").status_code == 404
    assert api.get("regions/us", role="viewer", query={"days": 0}).status_code == 422
    assert api.get("regions/us", role="viewer", query={"start": "soon"}).status_code == 422


def test_closures_and_special_hours(api: ApiClient, rt: Runtime) -> None:
    tuesday = upcoming(1)
    path = f"regions/us/overrides/{tuesday.isoformat()}"
    closed = api.put(path, role="editor", json={"note": "Company offsite <b>all day</b>"})
    assert closed.status_code == 201, closed.get_json()
    assert closed.get_json()["closed"] is True
    schedule = api.get(
        "regions/us", role="viewer", query={"start": tuesday.isoformat(), "days": 1}
    ).get_json()
    day = schedule["days"][0]
    assert day["open"] is False and day["source"] == "override"
    assert day["note"] == "Company offsite <b>all day</b>"

    special = api.put(path, role="editor", json={"hours": [["13:00", "15:00"], ["10:00", "12:00"]]})
    assert special.status_code == 200 and special.get_json()["hours"] == [
        ["10:00", "12:00"],
        ["13:00", "15:00"],
    ]
    day = api.get(
        "regions/us", role="viewer", query={"start": tuesday.isoformat(), "days": 1}
    ).get_json()["days"][0]
    assert day["open"] is True and len(day["intervals"]) == 2
    start = datetime.fromisoformat(day["intervals"][0]["start_at"])
    assert start.astimezone(ZoneInfo("America/New_York")).hour == 10

    listed = api.get("regions/us/overrides", role="viewer").get_json()
    assert [o["day"] for o in listed["items"]] == [tuesday.isoformat()]
    since = api.get(
        "regions/us/overrides",
        role="viewer",
        query={"since": (tuesday + timedelta(days=1)).isoformat()},
    ).get_json()
    assert since["total"] == 0

    for hours, fragment in [
        ([["25:00", "26:00"]], "not a time"),
        ([["12:00", "10:00"]], "must start before it ends"),
        ([["09:00", "12:00"], ["11:00", "13:00"]], "overlap"),
    ]:
        answer = api.put(path, role="editor", json={"hours": hours})
        assert answer.status_code == 422, hours
        assert fragment in " ".join(answer.get_json()["errors"]["hours"]), answer.get_json()
    past = api.put("regions/us/overrides/2020-01-01", role="editor", json={})
    assert past.status_code == 422 and "past" in past.get_json()["message"]
    far = api.put("regions/us/overrides/2099-01-01", role="editor", json={})
    assert far.status_code == 422
    assert api.put("regions/xx/overrides/2099-01-01", role="editor", json={}).status_code == 404
    assert api.put("regions/us/overrides/2026-13-01", role="editor", json={}).status_code == 404

    assert api.delete(path, role="editor").status_code == 204
    assert api.delete(path, role="editor").status_code == 404
    with rt.db.session() as session:
        assert (
            session.scalar(select(CalendarOverride).where(CalendarOverride.day == tuesday)) is None
        )
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_id == f"us:{tuesday.isoformat()}")
            .order_by(AuditEntry.id)
        ).all()
    assert actions == [
        "calendar.override.set",
        "calendar.override.set",
        "calendar.override.delete",
    ]


def test_a_closure_moves_the_next_contact_due_time_at_once(api: ApiClient) -> None:
    # A Monday to Wednesday with no public holiday, so only the closure moves the due time.
    monday = upcoming(0, at_least=14)
    while any(
        day["source"] != "weekly"
        for day in api.get(
            "regions/us", role="viewer", query={"start": monday.isoformat(), "days": 3}
        ).get_json()["days"]
    ):
        monday += timedelta(days=7)
    tuesday = monday + timedelta(days=1)
    wednesday = monday + timedelta(days=2)
    sample = {
        "received_at": datetime.combine(monday, datetime.min.time(), tzinfo=UTC)
        .replace(hour=15)
        .isoformat(),
        "attributes": {"channel": "email", "tier": "standard", "account_region": "us"},
    }
    before = api.post("route/explain", role="viewer", json=sample).get_json()
    due = datetime.fromisoformat(before["decision"]["sla"]["due_at"])
    assert due.astimezone(ZoneInfo("America/New_York")).date() == tuesday
    api.put(f"regions/us/overrides/{tuesday.isoformat()}", role="editor", json={"note": "closed"})
    after = api.post("route/explain", role="viewer", json=sample).get_json()
    due = datetime.fromisoformat(after["decision"]["sla"]["due_at"])
    assert due.astimezone(ZoneInfo("America/New_York")).date() == wednesday
    api.delete(f"regions/us/overrides/{tuesday.isoformat()}", role="editor")
