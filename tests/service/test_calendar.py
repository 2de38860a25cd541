"""The iCalendar writer (`drills.service.calendar.render`) and the schedules' events.

The output is read back by the small parser of `tests.service.ical`, which also checks the
physical form (CRLF, 75 octets, continuation lines). The schedule tests apply the bundled
`weekly-gameday` Drill (Tuesdays 10:00 Europe/Berlin) through `drills.service.schedules`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills import settings as settings_mod
from drills import tables_schedules  # noqa: F401  (its tables on journal.metadata)
from drills.scheduling import model
from drills.service import calendar, schedules
from orchestrator import journal
from tests.service import ical

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "drills" / "examples"
DRILL = EXAMPLES / "weekly-gameday.drill.yaml"


def event(**over: object) -> calendar.CalendarEvent:
    values: dict[str, object] = {
        "uid": "evt-1@stormdrill",
        "summary": "Drill",
        "start": dt.datetime(2026, 7, 1, 10, tzinfo=BERLIN),
        "end": dt.datetime(2026, 7, 1, 10, 30, tzinfo=BERLIN),
        "timezone": "Europe/Berlin",
        **over,
    }
    return calendar.CalendarEvent(**values)  # type: ignore[arg-type]


def render(*events: calendar.CalendarEvent) -> str:
    return calendar.render(events, name="Game days", now=NOW)


def vevents(text: str) -> list[ical.Component]:
    return ical.parse(text).components("VEVENT")


def observances(text: str, zone: str) -> list[tuple[str, str, str, str]]:
    """(kind, DTSTART, TZOFFSETFROM, TZOFFSETTO) of each observance of `zone`'s VTIMEZONE."""
    [tz] = [c for c in ical.parse(text).components("VTIMEZONE") if c.value("TZID") == zone]
    return [
        (c.name, c.value("DTSTART"), c.value("TZOFFSETFROM"), c.value("TZOFFSETTO"))
        for c in tz.children
    ]


# ---- the calendar and its events -------------------------------------------------------------


def test_the_calendar_has_its_header_and_each_event_its_properties_in_crlf_lines() -> None:
    text = render(
        event(
            description="Rehearse the outage.",
            url="https://stormdrill.example/api/v1/schedules/sch-1",
            categories=("stormdrill", "drill"),
        )
    )

    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")
    cal = ical.parse(text)
    assert cal.value("VERSION") == "2.0"
    assert cal.value("PRODID") == calendar.PRODID
    assert cal.value("CALSCALE") == "GREGORIAN"
    assert cal.value("X-WR-CALNAME") == "Game days"
    [vevent] = cal.components("VEVENT")
    assert vevent.value("UID") == "evt-1@stormdrill"
    assert vevent.value("DTSTAMP") == "20261202T120000Z"
    start, end = vevent.one("DTSTART"), vevent.one("DTEND")
    assert (start.params, start.value) == ({"TZID": "Europe/Berlin"}, "20260701T100000")
    assert (end.params, end.value) == ({"TZID": "Europe/Berlin"}, "20260701T103000")
    assert vevent.value("SUMMARY") == "Drill"
    assert vevent.value("DESCRIPTION") == "Rehearse the outage."
    assert vevent.value("URL") == "https://stormdrill.example/api/v1/schedules/sch-1"
    assert ical.split_text_list(vevent.value("CATEGORIES")) == ["stormdrill", "drill"]


def test_dtstamp_is_written_in_utc_whatever_zone_now_is_given_in() -> None:
    now = dt.datetime(2026, 12, 2, 13, 30, 15, tzinfo=BERLIN)
    text = calendar.render([event()], name="x", now=now)

    assert vevents(text)[0].value("DTSTAMP") == "20261202T123015Z"


def test_events_are_written_in_order_of_start_whatever_order_they_are_given_in() -> None:
    start = dt.datetime(2026, 7, 2, 9, tzinfo=dt.UTC)
    late = event(uid="b", start=start, end=start + dt.timedelta(hours=1))
    early = event(uid="a")

    assert [e.value("UID") for e in vevents(render(late, early))] == ["a", "b"]


def test_an_empty_calendar_is_still_a_valid_vcalendar_without_events_or_zones() -> None:
    cal = ical.parse(calendar.render([], name="Nothing yet", now=NOW))

    assert cal.children == []
    assert cal.value("X-WR-CALNAME") == "Nothing yet"


# ---- folding and escaping ---------------------------------------------------------------------


def test_a_long_multibyte_summary_is_folded_at_75_octets_and_unfolds_to_itself() -> None:
    summary = "Übung für das Zahlungsteam 🌩️ — Ausfall des Anbieters, Größe: groß " * 4
    text = render(event(summary=summary))

    physical = ical.physical_lines(text)  # asserts every line <= 75 octets and CRLF
    continued = [line for line in physical if line.startswith(" ")]
    assert len(continued) >= 4
    assert any(len(line.encode("utf-8")) in (73, 74, 75) for line in physical)
    assert ical.unescape(vevents(text)[0].value("SUMMARY")) == summary


@pytest.mark.parametrize(("filler", "first"), [(72, 75), (73, 73), (74, 74)])
def test_folding_never_splits_a_multibyte_character_at_the_boundary(
    filler: int, first: int
) -> None:
    line = "X" * filler + "€€€" + "y" * 80  # '€' is three octets
    parts = calendar.fold(line).split("\r\n ")

    assert "".join(parts) == line
    assert len(parts[0].encode("utf-8")) == first  # a '€' that does not fit moves whole
    assert all(len(part.encode("utf-8")) <= 74 for part in parts[1:])  # plus the space
    assert len(parts[-1].encode("utf-8")) <= 74 and len(parts) >= 2


def test_a_line_of_exactly_75_octets_is_not_folded_and_76_are() -> None:
    assert calendar.fold("A" * 75) == "A" * 75
    assert calendar.fold("A" * 76) == "A" * 75 + "\r\n A"
    assert calendar.fold("A" * 73 + "é") == "A" * 73 + "é"  # 75 octets
    assert calendar.fold("A" * 74 + "é") == "A" * 74 + "\r\n é"


def test_text_values_escape_backslash_semicolon_comma_and_newlines() -> None:
    text = render(
        event(
            summary=r"a,b;c\d",
            description="line one\nline two\r\nline three",
            categories=("chaos, continuity", "db;failover"),
        )
    )
    logical = ical.unfold(text)
    [vevent] = vevents(text)

    assert "SUMMARY:a\\,b\\;c\\\\d" in logical
    assert "DESCRIPTION:line one\\nline two\\nline three" in logical
    assert "CATEGORIES:chaos\\, continuity,db\\;failover" in logical
    assert ical.unescape(vevent.value("SUMMARY")) == r"a,b;c\d"
    assert ical.unescape(vevent.value("DESCRIPTION")) == "line one\nline two\nline three"
    assert ical.split_text_list(vevent.value("CATEGORIES")) == [
        "chaos, continuity",
        "db;failover",
    ]


def test_the_calendar_name_is_escaped_too() -> None:
    text = calendar.render([], name="Payments, Berlin; weekly", now=NOW)

    assert "X-WR-CALNAME:Payments\\, Berlin\\; weekly" in ical.unfold(text)


# ---- time zones ------------------------------------------------------------------------------


def test_berlin_vtimezone_gives_the_cest_and_cet_onsets_of_the_event_year() -> None:
    text = render(event())

    assert observances(text, "Europe/Berlin") == [
        ("STANDARD", "20260101T000000", "+0100", "+0100"),  # in effect on 1 January
        ("DAYLIGHT", "20260329T020000", "+0100", "+0200"),  # 02:00 CET becomes 03:00 CEST
        ("STANDARD", "20261025T030000", "+0200", "+0100"),  # 03:00 CEST becomes 02:00 CET
    ]
    [tz] = ical.parse(text).components("VTIMEZONE")
    assert [c.value("TZNAME") for c in tz.children] == ["CET", "CEST", "CET"]


def test_the_vtimezone_covers_every_year_the_events_span_and_is_written_once() -> None:
    december = event(
        uid="a",
        start=dt.datetime(2026, 12, 31, 23, tzinfo=BERLIN),
        end=dt.datetime(2027, 1, 1, 1, tzinfo=BERLIN),
    )
    text = render(december, event(uid="b"))

    assert len(ical.parse(text).components("VTIMEZONE")) == 1
    onsets = [start for _, start, _, _ in observances(text, "Europe/Berlin")]
    assert onsets == [
        "20260101T000000",
        "20260329T020000",
        "20261025T030000",
        "20270328T020000",
        "20271031T030000",
    ]


def test_transitions_are_found_to_the_second_from_zoneinfo_offsets() -> None:
    found = calendar.transitions("Europe/Berlin", first_year=2026, last_year=2026)

    hour = dt.timedelta(hours=1)
    assert [(t.at, t.offset_from, t.offset_to, t.dst) for t in found] == [
        (dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC), hour, 2 * hour, True),
        (dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC), 2 * hour, hour, False),
    ]


def test_an_event_just_before_and_just_after_a_dst_change_keeps_its_wall_time() -> None:
    before = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # 01:30 CET
    after = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)  # 03:30 CEST
    text = render(
        event(uid="a", start=before, end=before + dt.timedelta(minutes=10)),
        event(uid="b", start=after, end=after + dt.timedelta(minutes=10)),
    )

    assert [e.value("DTSTART") for e in vevents(text)] == ["20260329T013000", "20260329T033000"]


def test_a_start_in_the_repeated_hour_after_fall_back_is_written_in_utc() -> None:
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
    second = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)  # 02:30 CET, the same wall time
    text = render(
        event(uid="a", start=first, end=first + dt.timedelta(minutes=10)),
        event(uid="b", start=second, end=second + dt.timedelta(minutes=10)),
    )
    a, b = vevents(text)

    assert (a.one("DTSTART").params, a.value("DTSTART")) == (
        {"TZID": "Europe/Berlin"},
        "20261025T023000",
    )
    assert (b.one("DTSTART").params, b.value("DTSTART")) == ({}, "20261025T013000Z")


def test_a_utc_event_is_written_in_the_z_form_and_needs_no_vtimezone() -> None:
    start = dt.datetime(2026, 7, 1, 8, tzinfo=BERLIN)  # 06:00 UTC
    text = render(event(start=start, end=start + dt.timedelta(hours=1), timezone="UTC"))
    cal = ical.parse(text)
    [vevent] = cal.components("VEVENT")

    assert cal.components("VTIMEZONE") == []
    assert (vevent.one("DTSTART").params, vevent.value("DTSTART")) == ({}, "20260701T060000Z")
    assert ical.utc_time(vevent.value("DTEND")) == dt.datetime(2026, 7, 1, 7, tzinfo=dt.UTC)


def test_a_zone_without_transitions_gets_one_standard_observance() -> None:
    start = dt.datetime(2026, 7, 1, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    text = render(event(start=start, end=start + dt.timedelta(hours=1), timezone="Asia/Tokyo"))

    assert observances(text, "Asia/Tokyo") == [("STANDARD", "20260101T000000", "+0900", "+0900")]
    assert vevents(text)[0].value("DTSTART") == "20260701T100000"


def test_one_vtimezone_per_zone_used_and_none_for_utc() -> None:
    utc = event(uid="u", timezone="UTC")
    york = event(uid="n", timezone="America/New_York")
    text = render(event(uid="b"), york, utc)

    zones = [c.value("TZID") for c in ical.parse(text).components("VTIMEZONE")]
    assert zones == ["America/New_York", "Europe/Berlin"]
    assert observances(text, "America/New_York")[1] == (
        "DAYLIGHT",
        "20260308T020000",
        "-0500",
        "-0400",
    )


def test_offsets_with_seconds_keep_their_seconds() -> None:
    assert calendar.utc_offset_text(dt.timedelta(hours=1)) == "+0100"
    assert calendar.utc_offset_text(dt.timedelta(hours=-4, minutes=-30)) == "-0430"
    assert calendar.utc_offset_text(dt.timedelta(minutes=53, seconds=28)) == "+005328"


# ---- refused events --------------------------------------------------------------------------


def test_a_naive_start_is_refused_naming_the_event_and_the_fix() -> None:
    with pytest.raises(calendar.CalendarError, match=r"evt-1@stormdrill: start .* no time zone"):
        event(start=dt.datetime(2026, 7, 1, 10))


def test_an_unknown_zone_an_end_before_start_and_an_empty_uid_are_refused() -> None:
    with pytest.raises(calendar.CalendarError, match="'Mars/Olympus' is not an IANA zone"):
        event(timezone="Mars/Olympus")
    with pytest.raises(calendar.CalendarError, match="end is before start"):
        event(end=dt.datetime(2026, 7, 1, 9, tzinfo=BERLIN))
    with pytest.raises(calendar.CalendarError, match="non-empty uid"):
        event(uid="")
    with pytest.raises(calendar.CalendarError, match="control character"):
        event(url="https://x.example/\r\nBEGIN:VEVENT")


def test_two_events_with_one_uid_or_a_naive_now_are_refused() -> None:
    with pytest.raises(calendar.CalendarError, match="two events have the uid 'evt-1@stormdrill'"):
        render(event(), event())
    with pytest.raises(calendar.CalendarError, match="now has no time zone"):
        calendar.render([event()], name="x", now=dt.datetime(2026, 12, 2))


# ---- the schedules' fires --------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        reports_dir=tmp_path / "reports",
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with journal.open_store(config.database_url) as opened:
        yield opened


TUESDAYS = [dt.datetime(2026, 12, day, 9, tzinfo=dt.UTC) for day in (8, 15, 22)]  # 10:00 CET


def test_schedule_events_are_the_next_fires_of_each_schedule_in_its_zone(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    applied = schedules.apply(config, store, DRILL, owner="alice", now=NOW)
    found = calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=21))

    assert [e.start for e in found] == TUESDAYS
    assert all(e.end - e.start == calendar.DEFAULT_LENGTH for e in found)
    assert {e.timezone for e in found} == {"Europe/Berlin"}
    assert len({e.uid for e in found}) == 3
    assert all(e.uid.startswith(f"{applied.id}-") for e in found)
    first = found[0]
    assert first.summary == "Drill weekly-gameday: third-party-outage on staging"
    assert "Owner: alice" in first.description
    assert "cron 0 10 * * tue (Europe/Berlin)" in first.description
    assert first.categories == ("stormdrill", "drill")
    events = vevents(calendar.render(found, name="Game days", now=NOW))
    assert [e.value("DTSTART") for e in events] == [
        "20261208T100000",
        "20261215T100000",
        "20261222T100000",
    ]


def test_schedule_events_are_the_same_fires_the_preview_shows(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    applied = schedules.apply(config, store, DRILL, owner="alice", now=NOW)
    preview = schedules.preview_schedule(store, applied, n=5, now=NOW)
    found = calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=35))

    assert [e.start for e in found] == [item.utc for item in preview.fires]


def test_a_fire_a_blackout_skips_is_kept_and_marked_skipped(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedules.apply(config, store, DRILL, owner="alice", now=NOW)
    blackout = schedules.add_blackout(
        store,
        scope=model.BlackoutScope.GLOBAL,
        value="",
        windows=[
            model.DatedWindow(
                start=dt.datetime(2026, 12, 15, tzinfo=dt.UTC),
                end=dt.datetime(2026, 12, 16, tzinfo=dt.UTC),
            )
        ],
        timezone="UTC",
        reason="release freeze",
        by="alice",
    )
    found = calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=21))

    assert [e.start for e in found] == TUESDAYS
    skipped = [e for e in found if calendar.SKIPPED in e.categories]
    # the third is skipped too: 22 December is in staging's end-of-year change freeze
    assert [e.start for e in skipped] == [TUESDAYS[1], TUESDAYS[2]]
    assert [e.categories[-1] for e in skipped] == ["blackout", "freeze"]
    assert skipped[0].summary.startswith("[skipped] Drill weekly-gameday")
    assert f"Skipped: blackout {blackout.id}" in skipped[0].description
    assert "release freeze" in skipped[0].description
    assert not any(e.summary.startswith("[skipped]") for e in found if e not in skipped)


def test_a_paused_schedule_has_no_events_and_the_horizon_and_limit_bound_the_rest(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    applied = schedules.apply(config, store, DRILL, owner="alice", now=NOW)

    assert len(calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=6))) == 1
    assert len(calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=5))) == 0
    limited = calendar.schedule_events(
        store, now=NOW, horizon=dt.timedelta(days=366), limit_per_schedule=2
    )
    assert [e.start for e in limited] == TUESDAYS[:2]
    schedules.set_paused(store, applied.id, paused=True)
    assert calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=30)) == []


def test_a_limit_below_one_is_refused(store: journal.Journal) -> None:
    with pytest.raises(calendar.CalendarError, match="limit_per_schedule is 0; give 1 or more"):
        calendar.schedule_events(store, now=NOW, horizon=dt.timedelta(days=1), limit_per_schedule=0)
