"""Fire-time math: cron (and aliases), intervals, one-offs, zones, DST both ways, jitter, endAt."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from drills.scheduling import model, triggers
from scenarios import models

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def cron(expr: str, zone: str = "UTC", **extra: object) -> model.TriggerSpec:
    return model.TriggerSpec(kind=model.TriggerKind.CRON, timezone=zone, cron=expr, **extra)  # type: ignore[arg-type]


def take(spec: model.TriggerSpec, start: dt.datetime, n: int) -> list[dt.datetime]:
    return list(itertools.islice(triggers.nominal_times(spec, start=start), n))


def test_weekly_cron_fires_on_tuesdays_at_ten_berlin_time() -> None:
    found = take(cron("0 10 * * tue", "Europe/Berlin"), dt.datetime(2026, 12, 2, tzinfo=dt.UTC), 2)
    assert [t.astimezone(BERLIN).isoformat() for t in found] == [
        "2026-12-08T10:00:00+01:00",
        "2026-12-15T10:00:00+01:00",
    ]


def test_numeric_day_of_week_follows_crontab_where_zero_is_sunday() -> None:
    start = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)  # a Wednesday
    assert take(cron("0 10 * * 1"), start, 1)[0].strftime("%a") == "Mon"
    assert {t.strftime("%a") for t in take(cron("0 10 * * 0,7"), start, 3)} == {"Sun"}
    assert triggers.crontab_dow("1-5") == "mon,tue,wed,thu,fri"


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", "2026-12-02T11:00:00+00:00"),
        ("@daily", "2026-12-03T00:00:00+00:00"),
        ("@weekly", "2026-12-06T00:00:00+00:00"),
        ("@monthly", "2027-01-01T00:00:00+00:00"),
        ("@yearly", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_cron_aliases_stand_for_their_five_fields(alias: str, expected: str) -> None:
    schedule = models.Schedule(cron=alias)
    spec = model.TriggerSpec.from_schedule(schedule, anchor=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert take(spec, dt.datetime(2026, 12, 2, 10, 30, tzinfo=dt.UTC), 1)[0].isoformat() == expected


def test_interval_in_seconds_counts_from_its_anchor() -> None:
    anchor = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=dt.UTC)
    spec = model.TriggerSpec(kind=model.TriggerKind.EVERY, timezone="UTC", every_s=2, anchor=anchor)
    found = take(spec, anchor + dt.timedelta(seconds=3), 3)
    assert [(t - anchor).total_seconds() for t in found] == [4.0, 6.0, 8.0]


def test_one_off_fires_once_and_never_after() -> None:
    at = dt.datetime(2026, 12, 24, 9, tzinfo=dt.UTC)
    spec = model.TriggerSpec(kind=model.TriggerKind.AT, timezone="UTC", at=at)
    assert take(spec, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), 5) == [at]
    assert triggers.next_nominal(spec, after=at) is None


def test_daily_0230_fires_once_on_the_spring_forward_day_in_berlin() -> None:
    found = take(
        cron("30 2 * * *", "Europe/Berlin"), dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC), 3
    )
    days = [t.astimezone(BERLIN).date().isoformat() for t in found]
    assert days == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert found[0].astimezone(BERLIN).isoformat() == "2026-03-29T03:30:00+02:00"


def test_daily_0230_fires_once_on_the_fall_back_day_in_berlin() -> None:
    found = take(
        cron("30 2 * * *", "Europe/Berlin"), dt.datetime(2026, 10, 24, 12, tzinfo=dt.UTC), 3
    )
    assert [t.astimezone(BERLIN).isoformat() for t in found] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_jitter_is_the_same_on_every_replica_and_inside_its_window() -> None:
    nominal = dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC)
    first = triggers.jitter_of("sch-a", nominal, jitter_s=600)
    assert first == triggers.jitter_of("sch-a", nominal, jitter_s=600)
    assert dt.timedelta(0) <= first < dt.timedelta(seconds=600)
    spread = {triggers.jitter_of(f"sch-{i}", nominal, jitter_s=600) for i in range(20)}
    assert len(spread) > 1


def test_no_fire_after_end_at() -> None:
    end = dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.UTC)
    found = take(cron("@daily", end_at=end), dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC), 10)
    assert [t.date().isoformat() for t in found] == ["2026-12-02", "2026-12-03"]


def test_schedule_document_needs_exactly_one_trigger() -> None:
    with pytest.raises(ValueError, match="exactly one of 'cron'"):
        models.Schedule(cron="@daily", every="30m")  # type: ignore[arg-type]
    assert (
        models.Schedule(cron="0 10 * * tue", timezone="Europe/Berlin").catch_up
        is models.CatchUp.NONE
    )


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * tue", "hour 25 is out of range 0-23"),
        ("61 1 * * *", "minute 61 is out of range 0-59"),
        ("0 10 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 10 * 1-13 *", "month 13 is out of range 1-12"),
        ("0 10 * * 8", "day-of-week 8 is out of range 0-7"),
    ],
)
def test_a_cron_value_out_of_its_fields_range_is_refused_when_the_document_is_read(
    cron: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        models.Schedule(cron=cron)


def test_cron_values_ranges_steps_and_names_inside_their_ranges_are_accepted() -> None:
    for cron in ("*/5 0-23 1,15 1-12 0-7", "5 4 * * sun", "0 10 * jan-mar mon-fri"):
        assert models.Schedule(cron=cron).cron == cron
