"""`/schedules`: each schedule's next fires (its zone and UTC), recent fires and blackouts.

Schedules are applied through `drills.service.schedules.apply` (the world's
`weekly-absence` Drill: Mondays 10:00 Europe/Berlin) and fired by the claim pass
(`drills.scheduling.claiming.fire_due`); the page is parsed with `html.parser` and compared
with the service's preview and fires. The page uses the real clock, so the preview it is
compared with is taken around the request (a weekly schedule's next fires do not move
between the two). Pause and resume are forms: CSRF token, idempotency key, the API's
permission (unscoped `start`) and audit action names.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from drills.scheduling import claiming
from drills.service import audit, auth, documents, schedules
from tests.web.conftest import Web
from tests.web.html_tree import Node, parse

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


# ---- a small HTML tree (html.parser) --------------------------------------------------------

# ---- the world ------------------------------------------------------------------------------


def _folders(web: Web) -> documents.Folders:
    world = web.world
    return documents.Folders(
        scenarios=(world.scenarios,), environments=(world.environments,), drills=(world.drills,)
    )


def _apply(web: Web) -> schedules.ScheduleView:
    applied = schedules.apply(
        web.world.settings,
        web.store,
        web.world.drills / "weekly-absence.drill.yaml",
        owner="alice",
        folders=_folders(web),
    )
    return schedules.view(web.store, applied)


def _section(page: Node, schedule_id: str) -> Node:
    return page.one("section", id=f"schedule-{schedule_id}")


def _clock(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _blackout_around(web: Web, at: dt.datetime, *, reason: str) -> str:
    window = {
        "start": (at - dt.timedelta(hours=1)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M"),
        "end": (at + dt.timedelta(hours=1)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M"),
    }
    added = schedules.add_blackout(
        web.store,
        scope=schedules.BlackoutScope.GLOBAL,
        value="",
        windows=schedules.parse_windows([window], timezone="UTC"),
        timezone="UTC",
        reason=reason,
        by="alice",
    )
    return added.id


# ---- the page -------------------------------------------------------------------------------


def test_the_page_needs_a_login_and_sends_back_here(web: Web) -> None:
    answer = web.client.get("/schedules")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2Fschedules")


def test_a_viewer_sees_each_schedule_with_trigger_zone_owner_and_state(web: Web) -> None:
    view = _apply(web)
    web.login(auth.Role.VIEWER)

    answer = web.client.get("/schedules")

    assert answer.status_code == 200, answer.text
    section = _section(parse(answer.text), view.id)
    assert section.one("h3").text() == "weekly-absence"
    assert section.one("td", cls="trigger").text() == view.trigger
    assert "cron 0 10 * * 1" in view.trigger
    assert section.one("td", cls="timezone").text() == "Europe/Berlin"
    assert section.one("td", cls="owner").text() == "alice"
    assert "active" in section.one("td", cls="state").text()
    assert section.all("form") == []  # a viewer may not pause


def test_the_next_fires_in_the_zone_and_utc_equal_the_preview(web: Web) -> None:
    view = _apply(web)
    web.login(auth.Role.VIEWER)
    before = dt.datetime.now(dt.UTC)

    answer = web.client.get("/schedules")

    preview = schedules.preview_schedule(
        web.store, schedules.get(web.store, view.id), n=5, now=before
    )
    assert len(preview.fires) == 5
    rows = _section(parse(answer.text), view.id).one("table", cls="upcoming").all("tr", cls="fire")
    assert len(rows) == 5
    for row, item in zip(rows, preview.fires, strict=True):
        local = dt.datetime.fromisoformat(item.local)
        zoned = row.one("td", cls="zoned").one("time")
        utc = row.one("td", cls="utc").one("time")
        for element in (zoned, utc):
            assert dt.datetime.fromisoformat(element.attrs["datetime"]) == item.utc
            assert element.attrs["datetime"].endswith("Z")
        assert "data-local" in zoned.attrs and "data-local" not in utc.attrs
        assert zoned.text() == f"{_clock(local)} Europe/Berlin (UTC+01:00)" or zoned.text() == (
            f"{_clock(local)} Europe/Berlin (UTC+02:00)"
        )
        assert local.astimezone(BERLIN).strftime("%a %H:%M") == "Mon 10:00"
        assert utc.text() == f"{_clock(item.utc.astimezone(dt.UTC))} UTC"
        assert "✓ runs" in row.one("td", cls="verdict").text()


def test_a_fire_a_blackout_skips_is_marked_with_the_previews_reason(web: Web) -> None:
    view = _apply(web)
    first = schedules.preview_schedule(web.store, schedules.get(web.store, view.id), n=5)
    blackout = _blackout_around(web, first.fires[1].utc, reason="payments release freeze")
    web.login(auth.Role.VIEWER)

    answer = web.client.get("/schedules")

    preview = schedules.preview_schedule(web.store, schedules.get(web.store, view.id), n=5)
    marks = [item.skipped_by for item in preview.fires]
    assert marks[0] is None and marks[2:] == [None, None, None]
    assert marks[1] is not None and blackout in marks[1]
    page = parse(answer.text)
    rows = _section(page, view.id).one("table", cls="upcoming").all("tr", cls="fire")
    verdicts = [row.one("td", cls="verdict") for row in rows]
    assert ["skipped" in row.attrs["class"].split() for row in rows] == [
        False,
        True,
        False,
        False,
        False,
    ]
    assert "⊘ skipped" in verdicts[1].text()
    assert verdicts[1].one("span", cls="reason").text() == marks[1]
    assert "payments release freeze" in verdicts[1].text()
    listed = page.one("table", cls="blackouts").one("tr", id=f"blackout-{blackout}")
    assert "payments release freeze" in listed.text() and "global" in listed.text()


def test_recent_fires_show_started_with_the_run_link_and_skipped_with_why(web: Web) -> None:
    view = _apply(web)
    first = schedules.get(web.store, view.id)
    assert first.next_nominal is not None
    [started] = claiming.fire_due(web.store, first.next_nominal + dt.timedelta(seconds=1))
    schedules.set_paused(web.store, view.id, paused=True)
    second = schedules.get(web.store, view.id)
    assert second.next_nominal is not None
    [skipped] = claiming.fire_due(web.store, second.next_nominal + dt.timedelta(seconds=1))
    web.login(auth.Role.VIEWER)

    answer = web.client.get("/schedules")

    fires = schedules.fires(web.store, view.id)
    assert [f.outcome for f in fires] == [schedules.Outcome.SKIPPED, schedules.Outcome.STARTED]
    section = _section(parse(answer.text), view.id)
    rows = section.one("table", cls="recent").all("tr", cls="fire")
    assert [row.attrs["class"].split()[1] for row in rows] == ["skipped", "started"]
    newest, oldest = rows
    zoned = newest.one("td", cls="zoned").one("time")
    assert dt.datetime.fromisoformat(zoned.attrs["datetime"]) == skipped.nominal
    assert newest.one("span", cls="reason").text() == fires[0].reason
    assert fires[0].reason.startswith("paused")
    assert started.run_id is not None
    link = oldest.one("a")
    assert link.attrs["href"] == f"/runs/{started.run_id}" and link.text() == started.run_id
    # paused: every upcoming fire is marked as the loop will record it
    assert "paused" in section.one("td", cls="state").text()
    verdicts = [row.one("span", cls="reason").text() for row in section.all("tr", cls="fire")[:5]]
    assert all(text.startswith("paused") for text in verdicts)


def test_without_schedules_the_page_says_so(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    answer = web.client.get("/schedules")
    assert answer.status_code == 200
    page = parse(answer.text)
    assert page.all("section", cls="schedule") == []
    assert "No schedules yet" in page.text() and "No blackouts" in page.text()


def test_times_carry_the_local_time_script_and_no_inline_script(web: Web) -> None:
    _apply(web)
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get("/schedules").text)
    scripts = page.all("script")
    assert {s.attrs.get("src") for s in scripts} >= {"/static/localtime.js"}
    assert all(s.attrs.get("src") and s.text() == "" for s in scripts)
    script = web.client.get("/static/localtime.js")
    assert script.status_code == 200 and "Intl.DateTimeFormat" in script.text
    assert web.client.get("/static/calendar.css").status_code == 200


# ---- pause and resume -----------------------------------------------------------------------


def _form(page: Node, action: str) -> dict[str, str]:
    form = page.one("form", action=action)
    return {i.attrs["name"]: i.attrs.get("value", "") for i in form.all("input")}


def test_an_operator_pauses_and_resumes_through_the_forms_audited(web: Web) -> None:
    view = _apply(web)
    web.login(auth.Role.OPERATOR, name="ops")
    fields = _form(parse(web.client.get("/schedules").text), f"/schedules/{view.id}/pause")
    assert fields["csrf_token"] and fields["idempotency_key"]

    answer = web.client.post(f"/schedules/{view.id}/pause", data=fields)
    again = web.client.post(f"/schedules/{view.id}/pause", data=fields)  # a double click

    assert answer.status_code == again.status_code == 303
    assert answer.headers["location"] == f"/schedules#schedule-{view.id}"
    assert schedules.get(web.store, view.id).paused is True
    page = parse(web.client.get("/schedules").text)
    fields = _form(page, f"/schedules/{view.id}/resume")
    assert web.client.post(f"/schedules/{view.id}/resume", data=fields).status_code == 303
    assert schedules.get(web.store, view.id).paused is False
    entries = audit.entries(web.store, where=audit.EntryFilter(action="schedule."))
    assert [(e.action, e.principal, e.status, e.method) for e in reversed(entries)][-2:] == [
        ("schedule.pause", "ops", 200, "POST"),
        ("schedule.resume", "ops", 200, "POST"),
    ]
    assert {e.path for e in entries} == {
        f"/schedules/{view.id}/pause",
        f"/schedules/{view.id}/resume",
    }


def test_a_pause_without_the_csrf_token_is_403_and_changes_nothing(web: Web) -> None:
    view = _apply(web)
    web.login(auth.Role.OPERATOR)
    answer = web.client.post(f"/schedules/{view.id}/pause", data={"idempotency_key": "k1"})
    wrong = web.client.post(
        f"/schedules/{view.id}/pause", data={"csrf_token": "nope", "idempotency_key": "k2"}
    )
    assert answer.status_code == wrong.status_code == 403
    assert schedules.get(web.store, view.id).paused is False


def test_a_viewer_may_not_pause_403_audited_as_refused(web: Web) -> None:
    view = _apply(web)
    csrf = web.login(auth.Role.VIEWER, name="reader")
    answer = web.client.post(
        f"/schedules/{view.id}/pause", data={"csrf_token": csrf, "idempotency_key": "k"}
    )
    assert answer.status_code == 403
    assert "may not start drills" in parse(answer.text).one("p", cls="error").text()
    assert schedules.get(web.store, view.id).paused is False
    [entry] = audit.entries(web.store, where=audit.EntryFilter(action="schedule.pause"))
    assert (entry.principal, entry.status, entry.outcome) == (
        "reader",
        403,
        audit.Outcome.REFUSED,
    )


def test_pausing_an_unknown_schedule_is_404(web: Web) -> None:
    csrf = web.login(auth.Role.OPERATOR)
    answer = web.client.post(
        "/schedules/no-such/pause", data={"csrf_token": csrf, "idempotency_key": "k"}
    )
    assert answer.status_code == 404
    assert "no-such" in answer.text
    [entry] = audit.entries(web.store, where=audit.EntryFilter(action="schedule.pause"))
    assert entry.status == 404


def test_a_weekly_blackout_is_listed_with_its_days_zone_and_abort_option(web: Web) -> None:
    added = schedules.add_blackout(
        web.store,
        scope=schedules.BlackoutScope.ENVIRONMENT,
        value="test",
        windows=schedules.parse_windows(
            [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}],
            timezone="Europe/Berlin",
        ),
        timezone="Europe/Berlin",
        reason="office hours",
        by="alice",
        abort_running=True,
    )
    web.login(auth.Role.VIEWER)
    row = parse(web.client.get("/schedules").text).one("tr", id=f"blackout-{added.id}")
    cells = [td.text() for td in row.all("td")]
    assert cells == [
        added.id,
        "environment: test",
        "every mon, tue 09:00 to 17:00",
        "Europe/Berlin",
        "office hours",
        "yes",
        "alice",
    ]


LOCKED_DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: locked-absence
spec:
  scenario: absence-cover
  environment: locked
  schedule:
    cron: "0 10 * * 2"
    timezone: Europe/Berlin
"""


def test_a_schedule_awaiting_approval_says_so_and_marks_its_fires(web: Web) -> None:
    path = web.world.drills / "locked-absence.drill.yaml"
    path.write_text(LOCKED_DRILL, encoding="utf-8")
    applied = schedules.apply(
        web.world.settings, web.store, path, owner="alice", folders=_folders(web)
    )
    view = schedules.view(web.store, applied)
    assert view.awaiting_approval and view.approval is not None
    web.login(auth.Role.VIEWER)

    section = _section(parse(web.client.get("/schedules").text), view.id)

    state = section.one("td", cls="state").one("span", cls="approval").text()
    assert state == f"◇ awaiting approval ({view.approval.missing} of 1 missing)"
    reasons = [
        row.one("span", cls="reason").text()
        for row in section.one("table", cls="upcoming").all("tr", cls="fire")
    ]
    assert len(reasons) == 5
    assert all(reason.startswith("awaiting-approval") for reason in reasons)
