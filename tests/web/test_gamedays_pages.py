"""`/gamedays` (the month calendar, upcoming and recent game days) and `/gamedays/{id}`.

Game days are created through `drills.service.gamedays.create` from the documents of
`tests.gamedays.support` (three drills; alice facilitates, bob operates, dave approves)
and moved on with the service's own functions (start, notes, findings, gates, results,
absences, close), at fixed times passed as `now`. Schedules are applied through
`drills.service.schedules.apply` (the world's `weekly-absence` Drill: Mondays 10:00
Europe/Berlin). Pages are parsed with `html.parser` and compared with the service's data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from pathlib import Path

from drills.scheduling import claiming
from drills.service import auth, documents, gameday_reports, gamedays, schedules
from drills.web.pages import gamedays as gamedays_page
from orchestrator import journal, records, states
from reports import rendering
from tests.gamedays import support
from tests.web.conftest import Web
from tests.web.html_tree import Node, parse

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _create(
    web: Web, tmp_path: Path, text: str, name: str = "day.gameday.yaml"
) -> gamedays.GameDay:
    return gamedays.create(web.store, support.write(tmp_path, text, name), by="alice")


def _window(start: dt.datetime, end: dt.datetime) -> str:
    return f'start: "{start.isoformat()}"\n    end: "{end.isoformat()}"'


def _month_of(at: dt.datetime) -> str:
    return f"{at:%Y-%m}"


def _cell(page: Node, date: dt.date) -> Node:
    return page.one("table", cls="month").one("td", data_date=date.isoformat())


def _next_month(now: dt.datetime) -> dt.date:
    return (now.date().replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def _apply(web: Web) -> schedules.ScheduleView:
    world = web.world
    folders = documents.Folders(
        scenarios=(world.scenarios,), environments=(world.environments,), drills=(world.drills,)
    )
    applied = schedules.apply(
        world.settings,
        web.store,
        world.drills / "weekly-absence.drill.yaml",
        owner="alice",
        folders=folders,
    )
    return schedules.view(web.store, applied)


# ---- login and errors -----------------------------------------------------------------------


def test_the_pages_need_a_login_and_send_back_here(web: Web, tmp_path: Path) -> None:
    day = _create(web, tmp_path, support.document())
    for path, quoted in (
        ("/gamedays?month=2026-12", "%2Fgamedays%3Fmonth%3D2026-12"),
        (f"/gamedays/{day.id}", f"%2Fgamedays%2F{day.id}"),
        (f"/gamedays/{day.id}/report", f"%2Fgamedays%2F{day.id}%2Freport"),
    ):
        answer = web.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith(f"/login?next={quoted}"), path


def test_an_unknown_game_day_is_the_404_page(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    for path in ("/gamedays/gd-nope", "/gamedays/gd-nope/report"):
        answer = web.client.get(path)
        assert answer.status_code == 404, path
        assert "gd-nope" in parse(answer.text).one("p", cls="error").text()


def test_a_month_that_is_not_yyyy_mm_is_the_422_page(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    for bad in ("2026-13", "December", "2026-1", "0000-05"):
        answer = web.client.get("/gamedays", params={"month": bad})
        assert answer.status_code == 422, bad
        assert "YYYY-MM" in parse(answer.text).one("p", cls="error").text()


# ---- the month calendar ---------------------------------------------------------------------


def test_the_calendar_is_a_monday_first_table_of_the_month(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get("/gamedays", params={"month": "2026-12"}).text)
    table = page.one("table", cls="month")
    assert [th.one("abbr").attrs["title"] for th in table.all("th")] == [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    assert all(th.attrs["scope"] == "col" for th in table.all("th"))
    inside = [td.attrs["data-date"] for td in table.all("td", cls="inside")]
    assert inside == [f"2026-12-{day:02d}" for day in range(1, 32)]
    weeks = table.one("tbody").all("tr")
    assert [len(week.all("td")) for week in weeks] == [7] * len(weeks)
    assert weeks[0].all("td")[0].attrs["data-date"] == "2026-11-30"  # a Monday
    assert page.one("h2", id="month-heading").text() == "December 2026"


def test_previous_and_next_month_links_work_across_the_year(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get("/gamedays", params={"month": "2026-12"}).text)
    nav = page.one("nav", cls="months")
    assert nav.one("a", rel="prev").attrs["href"] == "/gamedays?month=2026-11"
    following = nav.one("a", rel="next").attrs["href"]
    assert following == "/gamedays?month=2027-01"

    answer = web.client.get(following)

    assert answer.status_code == 200
    january = parse(answer.text)
    assert january.one("h2", id="month-heading").text() == "January 2027"
    assert january.one("nav", cls="months").one("a", rel="prev").attrs["href"] == (
        "/gamedays?month=2026-12"
    )
    back = parse(web.client.get("/gamedays?month=2026-01").text)
    assert back.one("a", rel="prev").attrs["href"] == "/gamedays?month=2025-12"


def test_a_game_day_is_on_its_date_in_its_own_zone(web: Web, tmp_path: Path) -> None:
    # 00:30 to 02:00 in Berlin on 9 December is 23:30 UTC on the 8th
    window = 'start: "2026-12-09T00:30:00"\n    end: "2026-12-09T02:00:00"'
    day = _create(web, tmp_path, support.document(name="night-gameday", window=window))
    assert day.window_start == dt.datetime(2026, 12, 8, 23, 30, tzinfo=dt.UTC)
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get("/gamedays", params={"month": "2026-12"}).text)

    ninth = _cell(page, dt.date(2026, 12, 9))
    [item] = ninth.all("li", cls="gameday")
    assert item.one("a").attrs["href"] == f"/gamedays/{day.id}"
    assert item.one("a").text() == "night-gameday"
    assert item.one("time").text() == "00:30 to 02:00 Europe/Berlin"
    assert item.one("time").attrs["data-local"] == "short"
    assert item.one("time").attrs["datetime"] == "2026-12-08T23:30:00Z"
    assert _cell(page, dt.date(2026, 12, 8)).all("li", cls="gameday") == []
    elsewhere = parse(web.client.get("/gamedays", params={"month": "2027-01"}).text)
    assert elsewhere.one("table", cls="month").all("li", cls="gameday") == []


def test_a_game_day_over_midnight_is_on_both_dates(web: Web, tmp_path: Path) -> None:
    window = 'start: "2026-12-30T22:00:00"\n    end: "2027-01-01T02:00:00"'
    day = _create(web, tmp_path, support.document(name="year-end", window=window))
    web.login(auth.Role.VIEWER)
    december = parse(web.client.get("/gamedays?month=2026-12").text)
    january = parse(web.client.get("/gamedays?month=2027-01").text)
    placed = [
        td.attrs["data-date"]
        for page in (december, january)
        for td in page.one("table", cls="month").all("td", cls="inside")
        if any(li.one("a").attrs["href"] == f"/gamedays/{day.id}" for li in td.all("li"))
    ]
    assert placed == ["2026-12-30", "2026-12-31", "2027-01-01"]


def test_the_months_scheduled_fires_are_the_previews_on_their_dates(web: Web) -> None:
    view = _apply(web)
    now = dt.datetime.now(dt.UTC)
    month = _next_month(now)
    preview = schedules.preview_schedule(
        web.store,
        schedules.get(web.store, view.id),
        n=10,
        now=dt.datetime.combine(month, dt.time(), dt.UTC) - dt.timedelta(days=1),
    )
    expected = [
        item
        for item in preview.fires
        if (item.utc.astimezone(BERLIN).year, item.utc.astimezone(BERLIN).month)
        == (month.year, month.month)
    ]
    assert len(expected) in (4, 5)  # Mondays of a month
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get("/gamedays", params={"month": f"{month:%Y-%m}"}).text)

    table = page.one("table", cls="month")
    fires = [
        (td.attrs["data-date"], li)
        for td in table.all("td", cls="inside")
        for li in td.all("li", cls="fire")
    ]
    assert [date for date, _ in fires] == [
        item.utc.astimezone(BERLIN).date().isoformat() for item in expected
    ]
    for (_, li), item in zip(fires, expected, strict=True):
        element = li.one("time")
        assert dt.datetime.fromisoformat(element.attrs["datetime"]) == item.utc
        assert element.text() == "10:00 Europe/Berlin"
        assert element.attrs["title"].startswith(
            f"{dt.datetime.fromisoformat(item.local):%Y-%m-%d}"
        )
        assert li.one("a").text() == "weekly-absence"
        assert "✓ runs" in li.text()


def test_a_fire_a_blackout_skips_is_marked_on_the_calendar(web: Web) -> None:
    view = _apply(web)
    month = _next_month(dt.datetime.now(dt.UTC))
    start = dt.datetime.combine(month, dt.time(), dt.UTC)
    preview = schedules.preview_schedule(
        web.store, schedules.get(web.store, view.id), n=10, now=start
    )
    target = preview.fires[1].utc
    window = {
        "start": f"{target - dt.timedelta(hours=1):%Y-%m-%dT%H:%M}",
        "end": f"{target + dt.timedelta(hours=1):%Y-%m-%dT%H:%M}",
    }
    blackout = schedules.add_blackout(
        web.store,
        scope=schedules.BlackoutScope.GLOBAL,
        value="",
        windows=schedules.parse_windows([window], timezone="UTC"),
        timezone="UTC",
        reason="quarter close",
        by="alice",
    )
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get("/gamedays", params={"month": f"{month:%Y-%m}"}).text)

    cell = _cell(page, target.astimezone(BERLIN).date())
    [li] = cell.all("li", cls="fire")
    assert "skipped" in li.attrs["class"].split()
    reason = li.one("span", cls="reason").text()
    assert blackout.id in reason and "quarter close" in reason
    others = [
        other for other in page.one("table", cls="month").all("li", cls="fire") if other is not li
    ]
    assert others and all("skipped" not in o.attrs["class"].split() for o in others)


def test_a_recorded_fire_is_on_the_calendar_with_its_run(web: Web) -> None:
    view = _apply(web)
    first = schedules.get(web.store, view.id)
    assert first.next_nominal is not None
    [fired] = claiming.fire_due(web.store, first.next_nominal + dt.timedelta(seconds=1))
    assert fired.run_id is not None
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get("/gamedays", params={"month": _month_of(fired.nominal)}).text)

    cell = _cell(page, fired.nominal.astimezone(BERLIN).date())
    [li] = cell.all("li", cls="fire")
    assert "started" in li.attrs["class"].split()
    assert li.one("a").attrs["href"] == f"/runs/{fired.run_id}"
    assert "▶ started" in li.text()


def test_a_paused_schedules_fires_are_left_off_the_calendar(web: Web) -> None:
    view = _apply(web)
    schedules.set_paused(web.store, view.id, paused=True)
    web.login(auth.Role.VIEWER)
    month = _next_month(dt.datetime.now(dt.UTC))
    page = parse(web.client.get("/gamedays", params={"month": f"{month:%Y-%m}"}).text)
    assert page.one("table", cls="month").all("li", cls="fire") == []


# ---- upcoming and recent --------------------------------------------------------------------


def test_upcoming_and_recent_game_days_are_listed_apart(web: Web, tmp_path: Path) -> None:
    coming = _create(
        web, tmp_path, support.document(name="coming", window=support.window_around_now()), "a.yaml"
    )
    past_window = _window(dt.datetime(2020, 3, 1, 10), dt.datetime(2020, 3, 1, 12))
    done = _create(web, tmp_path, support.document(name="done", window=past_window), "b.yaml")
    gamedays.start(web.store, done.id, force=True)
    gamedays.close(web.store, done.id, verdict="Checkout held")
    missed = _create(
        web,
        tmp_path,
        support.document(name="missed", window=past_window.replace("2020-03-01", "2020-04-01")),
        "c.yaml",
    )
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get("/gamedays").text)

    tables = page.all("table", cls="gamedays")
    upcoming, recent = tables
    assert [row.one("a").text() for row in upcoming.one("tbody").all("tr")] == ["coming"]
    assert upcoming.one("a").attrs["href"] == f"/gamedays/{coming.id}"
    assert [row.one("a").text() for row in recent.one("tbody").all("tr")] == ["missed", "done"]
    [done_row] = [r for r in recent.all("tr") if r.attrs.get("id") == f"gameday-{done.id}"]
    assert done_row.one("td", cls="state").text() == "closed: Checkout held"
    assert missed.state is gamedays.State.PLANNED
    # no month given: this month (UTC)
    now = dt.datetime.now(dt.UTC)
    assert page.one("h2", id="month-heading").text() == f"{now:%B %Y}"


# ---- one game day ---------------------------------------------------------------------------


def _played(web: Web, tmp_path: Path) -> gamedays.GameDay:
    """The support document's game day, started, noted on, gated, one drill done, bob absent."""
    day = _create(web, tmp_path, support.document())
    at = support.IN_WINDOW
    gamedays.start(web.store, day.id, now=at)
    gamedays.note(
        web.store,
        day.id,
        author=support.ALICE,
        text="zone b drained",
        now=at + dt.timedelta(minutes=5),
    )
    gamedays.note(
        web.store,
        day.id,
        author=support.BOB,
        text="checkout p99 doubled",
        finding=gamedays.Finding(
            owner=support.DAVE,
            due=dt.date(2026, 12, 31),
            ticket_url="https://tickets.example.com/SRE-42",
        ),
        now=at + dt.timedelta(minutes=10),
    )
    gamedays.set_drill_result(
        web.store,
        day.id,
        position=1,
        run_id=None,
        verdict=states.Verdict.HELD,
        now=at + dt.timedelta(minutes=20),
    )
    gamedays.gate(
        web.store,
        day.id,
        position=2,
        decision=gamedays.Decision.GO,
        by=support.ALICE,
        now=at + dt.timedelta(minutes=25),
    )
    gamedays.mark_absent(web.store, day.id, person=support.BOB, now=at + dt.timedelta(minutes=30))
    return gamedays.get(web.store, day.id)


def test_the_game_day_page_shows_window_state_services_and_channel(
    web: Web, tmp_path: Path
) -> None:
    day = _played(web, tmp_path)
    web.login(auth.Role.VIEWER)

    answer = web.client.get(f"/gamedays/{day.id}")

    assert answer.status_code == 200, answer.text
    page = parse(answer.text)
    assert page.one("h1").text() == "Game day checkout-gameday"
    summary = page.one("table", id="summary")
    window = summary.one("td", cls="window")
    assert window.one("time").text() == gamedays.window_text(day)
    assert window.one("time").text() == "2026-12-08 10:00 to 13:00 Europe/Berlin"
    assert dt.datetime.fromisoformat(window.one("time").attrs["datetime"]) == day.window_start
    assert "2026-12-08 09:00 UTC to 2026-12-08 12:00 UTC" in window.text()
    assert summary.one("td", cls="state").text() == "▶ running"
    assert [c.text() for c in summary.one("td", cls="services").all("code")] == list(day.services)
    assert summary.one("td", cls="channel").one("a").attrs["href"] == day.channel_url
    assert page.one("a", id="report-link").attrs["href"] == f"/gamedays/{day.id}/report"
    # by name too, as the API takes it
    assert web.client.get("/gamedays/checkout-gameday").status_code == 200


def test_the_game_day_page_lists_participants_with_roles_and_who_is_absent(
    web: Web, tmp_path: Path
) -> None:
    day = _played(web, tmp_path)
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get(f"/gamedays/{day.id}").text)
    rows = page.one("table", cls="participants").all("tr", cls="participant")
    listed = [
        (
            r.one("td", cls="person").text(),
            r.one("td", cls="roles").text(),
            "absent" in r.attrs["class"].split(),
        )
        for r in rows
    ]
    assert listed == [
        (p.person, ", ".join(role.value for role in p.roles), p.absent) for p in day.participants
    ]
    assert (support.BOB, "operator", True) in listed
    assert (support.DAVE, "approver, service-owner", False) in listed
    bob = next(r for r in rows if r.one("td", cls="person").text() == support.BOB)
    assert "✗ absent" in bob.one("td", cls="presence").text()


def test_the_game_day_page_lists_drills_in_order_with_gates_verdicts_and_runs(
    web: Web, tmp_path: Path
) -> None:
    day = _played(web, tmp_path)
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get(f"/gamedays/{day.id}").text)
    rows = page.one("table", cls="drills").all("tr", cls="drill")
    assert [r.one("td", cls="position").text() for r in rows] == ["1", "2", "3"]
    assert [r.one("td", cls="ref").one("code").text() for r in rows] == [s.ref for s in day.drills]
    assert [r.one("td", cls="gate").text() for r in rows] == ["auto", "manual", "approval"]
    decisions = [r.one("td", cls="decision").text() for r in rows]
    assert decisions[0].startswith("✓ go by auto")
    assert decisions[1].startswith(f"✓ go by {support.ALICE} at 2026-12-08 10:55 Europe/Berlin")
    assert decisions[2] == "◇ not decided"
    verdicts = [r.one("td", cls="verdict").text() for r in rows]
    assert verdicts == ["✓ held", "○ not run", "○ not run"]
    assert [r.one("td", cls="environment").text() for r in rows][1:] == ["staging", "staging"]


def _ended_run(web: Web, verdict: states.Verdict) -> str:
    """A run in the store that ended (COMPLETED) with `verdict`."""
    now = dt.datetime.now(dt.UTC)
    run = states.new_run(
        id=states.new_run_id(now),
        scenario="absence-cover",
        environment="test",
        environment_source="test.environment.yaml",
        owner=journal.UNCLAIMED,
        at=now,
        record=records.RunRecord(time_scale=1.0),
    )
    web.store.create_run(run)
    done = dataclasses.replace(run, state=states.RunState.COMPLETED, verdict=verdict)
    web.store.save_run(done, expected_state=states.RunState.PENDING)
    return run.id


def test_a_drill_with_a_run_links_to_it_and_shows_its_verdict(web: Web, tmp_path: Path) -> None:
    day = _create(web, tmp_path, support.document(window=support.window_around_now()))
    gamedays.start(web.store, day.id)
    run_id = _ended_run(web, states.Verdict.DEVIATED)
    gamedays.set_drill_result(
        web.store, day.id, position=1, run_id=run_id, verdict=states.Verdict.DEVIATED
    )
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get(f"/gamedays/{day.id}").text)

    first = page.one("tr", id="drill-1")
    assert first.one("td", cls="run").one("a").attrs["href"] == f"/runs/{run_id}"
    assert first.one("td", cls="verdict").text() == "✗ deviated"


def test_the_game_day_page_lists_notes_and_findings_with_their_action_items(
    web: Web, tmp_path: Path
) -> None:
    day = _played(web, tmp_path)
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get(f"/gamedays/{day.id}").text)
    [note] = page.one("ol", cls="notes").all("li", cls="note")
    [stored_note] = [n for n in day.notes if n.kind is gamedays.NoteKind.NOTE]
    assert note.one("span", cls="author").text() == support.ALICE
    assert note.one("span", cls="text").text() == "zone b drained"
    assert dt.datetime.fromisoformat(note.one("time").attrs["datetime"]) == stored_note.at
    assert note.one("time").text() == "2026-12-08 10:35 Europe/Berlin (UTC+01:00)"
    [finding] = page.one("table", cls="findings").all("tr", cls="finding")
    assert finding.one("td", cls="text").text() == "checkout p99 doubled"
    assert finding.one("td", cls="author").text() == support.BOB
    assert finding.one("td", cls="owner").text() == support.DAVE
    assert finding.one("td", cls="due").text() == "2026-12-31"
    link = finding.one("td", cls="ticket").one("a")
    assert link.attrs["href"] == "https://tickets.example.com/SRE-42"


def test_a_planned_game_day_without_notes_says_so(web: Web, tmp_path: Path) -> None:
    day = _create(web, tmp_path, support.document())
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get(f"/gamedays/{day.id}").text)
    assert page.one("table", id="summary").one("td", cls="state").text() == "○ planned"
    assert "No notes yet." in page.text() and "No findings yet." in page.text()
    assert [r.one("td", cls="verdict").text() for r in page.all("tr", cls="drill")] == [
        "○ not run"
    ] * 3


def test_the_report_page_is_the_services_html_report(web: Web, tmp_path: Path) -> None:
    day = _played(web, tmp_path)
    web.login(auth.Role.VIEWER)

    answer = web.client.get(f"/gamedays/{day.id}/report")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text == gameday_reports.render(
        web.store, day.id, fmt="html", links=gamedays_page.PAGE_LINKS
    )
    assert "checkout p99 doubled" in answer.text
    assert "/api/v1/" not in answer.text  # a browser has no bearer token: run pages instead
    assert "<script" not in answer.text
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_a_report_read_in_a_browser_links_each_post_mortem_to_its_run_page() -> None:
    links = gamedays_page.PAGE_LINKS
    assert links.postmortem("20261206T100000Z-3f9a1c2b", rendering.Format.HTML) == (
        "/runs/20261206T100000Z-3f9a1c2b#postmortem"
    )
    assert links.postmortem("a/b", rendering.Format.HTML) == "/runs/a%2Fb#postmortem"
