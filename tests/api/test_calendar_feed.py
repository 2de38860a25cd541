"""`GET /api/v1/gamedays.ics`: the scheduled drills as an iCalendar feed, over the real app.

The schedule is applied through `drills.service.schedules.apply` (the world's
`weekly-absence` Drill: Mondays 10:00 Europe/Berlin); the feed is read back with the small
parser of `tests.service.ical`. The route uses the real clock, so the fires are checked
against the times around the request, not against fixed dates.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from pathlib import Path

from fastapi import testclient

from drills.scheduling import model
from drills.service import documents, gamedays, schedules
from tests.api import conftest
from tests.gamedays import support as gameday_support
from tests.service import ical

FEED = "/api/v1/gamedays.ics"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _apply(world: conftest.ApiWorld, client: testclient.TestClient) -> model.Schedule:
    folders = documents.Folders(
        scenarios=(world.scenarios,), environments=(world.environments,), drills=(world.drills,)
    )
    return schedules.apply(
        world.settings,
        conftest.store_of(client),
        world.drills / "weekly-absence.drill.yaml",
        owner="alice",
        folders=folders,
    )


def _fires(text: str) -> list[dt.datetime]:
    """The start of each VEVENT as an aware time (TZID or Z form)."""
    found = []
    for vevent in ical.parse(text).components("VEVENT"):
        start = vevent.one("DTSTART")
        if "TZID" in start.params:
            zone = zoneinfo.ZoneInfo(start.params["TZID"])
            found.append(ical.local_time(start.value).replace(tzinfo=zone))
        else:
            found.append(ical.utc_time(start.value))
    return found


def test_the_feed_holds_the_upcoming_fires_of_an_applied_schedule(
    api_world: conftest.ApiWorld, api_client: testclient.TestClient
) -> None:
    schedule = _apply(api_world, api_client)
    before = dt.datetime.now(dt.UTC)
    answer = api_client.get(FEED, params={"days": 21})
    after = dt.datetime.now(dt.UTC)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    cal = ical.parse(answer.text)
    assert cal.value("X-WR-CALNAME") == "Stormdrill game days"
    assert [tz.value("TZID") for tz in cal.components("VTIMEZONE")] == ["Europe/Berlin"]
    fires = _fires(answer.text)
    assert len(fires) == 3  # a weekly schedule over 21 days
    for fire in fires:
        local = fire.astimezone(BERLIN)
        assert (local.weekday(), local.hour, local.minute) == (0, 10, 0)  # Monday 10:00
        assert before <= fire <= after + dt.timedelta(days=21)
    assert [b - a for a, b in itertools.pairwise(fires)] == [dt.timedelta(days=7)] * 2
    preview = schedules.preview_schedule(conftest.store_of(api_client), schedule, n=3, now=before)
    assert fires == [item.utc for item in preview.fires]
    [first, *_] = cal.components("VEVENT")
    assert first.one("DTSTART").params == {"TZID": "Europe/Berlin"}
    assert ical.unescape(first.value("SUMMARY")) == ("Drill weekly-absence: absence-cover on test")
    assert first.value("UID").startswith(f"{schedule.id}-")


def test_the_default_horizon_is_30_days(
    api_world: conftest.ApiWorld, api_client: testclient.TestClient
) -> None:
    _apply(api_world, api_client)
    answer = api_client.get(FEED)

    assert answer.status_code == 200, answer.text
    assert len(_fires(answer.text)) in (4, 5)  # Mondays in the next 30 days


def test_a_viewer_reads_the_feed(viewer_client: testclient.TestClient) -> None:
    answer = viewer_client.get(FEED)

    assert answer.status_code == 200, answer.text
    assert ical.parse(answer.text).components("VEVENT") == []


def test_without_schedules_the_feed_is_an_empty_calendar(
    api_client: testclient.TestClient,
) -> None:
    answer = api_client.get(FEED, params={"days": 366})

    assert answer.status_code == 200, answer.text
    cal = ical.parse(answer.text)
    assert cal.children == []
    assert cal.value("VERSION") == "2.0"


def test_a_paused_schedule_is_not_in_the_feed(
    api_world: conftest.ApiWorld, api_client: testclient.TestClient
) -> None:
    schedule = _apply(api_world, api_client)
    schedules.set_paused(conftest.store_of(api_client), schedule.id, paused=True)

    answer = api_client.get(FEED)

    assert answer.status_code == 200, answer.text
    assert _fires(answer.text) == []


def test_the_feed_needs_a_token(app_for: conftest.AppFor) -> None:
    with testclient.TestClient(app_for(None, drive_runs=False)) as client:
        answer = client.get(FEED)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    conftest.problem_of(answer)


def test_days_outside_1_to_366_or_not_a_number_is_422(
    api_client: testclient.TestClient,
) -> None:
    for days in ("0", "367", "-5", "soon"):
        answer = api_client.get(FEED, params={"days": days})

        assert answer.status_code == 422, (days, answer.text)
        assert conftest.problem_of(answer)["detail"].startswith("query.days: "), answer.text


def _gameday(folder: Path, *, name: str, start: dt.datetime) -> Path:
    window = (
        f'start: "{start:%Y-%m-%dT%H:%M:%S}"\n'
        f'    end: "{start + dt.timedelta(hours=3):%Y-%m-%dT%H:%M:%S}"'
    )
    return gameday_support.write(
        folder, gameday_support.document(name=name, window=window), name=f"{name}.gameday.yaml"
    )


def test_the_feed_holds_the_game_days_not_closed_in_their_zone_with_drills_and_people(
    api_world: conftest.ApiWorld, api_client: testclient.TestClient, tmp_path: Path
) -> None:
    store = conftest.store_of(api_client)
    local = dt.datetime.now(BERLIN).replace(tzinfo=None, microsecond=0, second=0)
    start = (local + dt.timedelta(days=3)).replace(hour=10, minute=0)
    gamedays.create(store, _gameday(tmp_path, name="checkout-gd", start=start), by="alice")
    closed = gamedays.create(store, _gameday(tmp_path, name="closed-gd", start=start), by="alice")
    gamedays.start(store, closed.name, now=start.replace(tzinfo=BERLIN))  # its window opens
    gamedays.close(store, closed.name, verdict="held")
    gamedays.create(
        store, _gameday(tmp_path, name="far-gd", start=local + dt.timedelta(days=60)), by="alice"
    )

    answer = api_client.get(FEED, params={"days": 14})

    assert answer.status_code == 200, answer.text
    [event] = ical.parse(answer.text).components("VEVENT")
    assert ical.unescape(event.value("SUMMARY")) == "Game day: checkout-gd"
    assert event.one("DTSTART").params == {"TZID": "Europe/Berlin"}
    assert ical.local_time(event.one("DTSTART").value) == start
    assert ical.local_time(event.one("DTEND").value) == start + dt.timedelta(hours=3)
    assert event.value("URL") == "https://chat.example.com/channels/shop-oncall"
    description = ical.unescape(event.value("DESCRIPTION"))
    assert f"facilitated by {gameday_support.ALICE}" in description
    assert "2. third-party-outage on staging (gate: manual)" in description
    assert f"{gameday_support.DAVE}: approver, service-owner" in description
