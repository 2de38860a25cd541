"""Durations, percentages and quantities parse what users write and refuse the rest."""

from __future__ import annotations

import pytest

from scenarios import quantities


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations_parse_to_seconds_and_print_back(text: str, seconds: float) -> None:
    duration = quantities.Duration.parse(text)
    assert duration.seconds == seconds
    assert str(duration) == text
    assert duration.timedelta.total_seconds() == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0s", "positive"),
        ("-5m", "positive"),
        ("5", "no unit"),
        ("5 minutes", "not a duration"),
        ("30m1h", "largest first"),
    ],
)
def test_bad_durations_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        quantities.Duration.parse(text)


def test_scaling_a_duration_shrinks_it() -> None:
    assert quantities.Duration.parse("5m").scaled(0.02) == quantities.Duration(6.0)


@pytest.mark.parametrize(("text", "fragment"), [("150%", "exceed 100%"), ("0%", "above 0%")])
def test_percentages_outside_range_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        quantities.Percent.parse(text)


def test_percent_of_a_total_rounds_down() -> None:
    assert quantities.Percent.parse("34%").of(6) == 2
    assert str(quantities.Percent.parse("12.5%")) == "12.5%"
