"""The notifications file and settings: mistakes placed at file:line:column with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.service.notify import notices, routing
from tests.notifications import conftest as world


def _problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    with pytest.raises(routing.NotificationsInvalid) as caught:
        world.load(tmp_path, text, **env)
    return [str(p) for p in caught.value.problems]


def test_an_unknown_field_is_placed_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
sinks:
  - name: hook
    type: webhook
    url: https://hooks.example.com/x
    secretEnvv: HOOK_SECRET
""",
    )

    path = tmp_path / "notifications.yaml"
    assert problems == [
        f"{path}:5:5: sinks[0].secretEnvv: unknown field 'secretEnvv' (did you mean 'secretEnv'?)"
    ]


def test_an_unknown_kind_and_an_unknown_sink_in_a_route_are_placed_with_suggestions(
    tmp_path: Path,
) -> None:
    problems = _problems(
        tmp_path,
        """\
sinks:
  - {name: paging, type: slack, url: "https://hooks.slack.com/services/x"}
routes:
  - match: {kinds: [rollback-faild]}
    sinks: [paging]
""",
    )

    assert len(problems) == 1
    assert (
        ":4:21: routes[0].match.kinds[0]: a string ('rollback-faild') is not one of"
        in (problems[0])
    )
    assert "did you mean 'rollback-failed'" in problems[0]

    problems = _problems(
        tmp_path,
        """\
sinks:
  - {name: paging, type: slack, url: "https://hooks.slack.com/services/x"}
routes:
  - {sinks: [pagng]}
""",
    )
    assert problems == [
        f"{tmp_path / 'notifications.yaml'}:4:14: routes[0].sinks[0]: no sink named 'pagng'"
        " (did you mean 'paging'?)"
    ]


def test_a_sink_variable_that_is_not_set_is_a_mistake_of_the_file(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
sinks:
  - name: paging
    type: slack
    urlEnv: PAGING_URL
""",
    )

    assert problems == [
        f"{tmp_path / 'notifications.yaml'}:4:13: sinks[0].urlEnv: the variable PAGING_URL is"
        " not set (export it with the sink's URL, or write url: instead)"
    ]


def test_a_sink_needs_exactly_one_of_url_and_url_env(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sinks:\n  - {name: hook, type: webhook}\n")

    assert len(problems) == 1 and "set exactly one of url or urlEnv" in problems[0]
    assert problems[0].startswith(f"{tmp_path / 'notifications.yaml'}:2:")


def test_the_defaults_and_durations_are_read(tmp_path: Path) -> None:
    config = world.load(
        tmp_path,
        """\
upcoming: {lead: 30m}
delivery: {maxAttempts: 3, backoff: 500ms, maxBackoff: 1m, timeout: 2s}
sinks:
  - {name: hook, type: webhook, url: "https://h.example.com/x", secretEnv: HOOK_SECRET}
routes:
  - {match: {minSeverity: critical}, sinks: [hook]}
""",
    )

    assert config.upcoming_lead_s == 1800
    assert config.delivery == routing.DeliveryPolicy(
        max_attempts=3, backoff_s=0.5, max_backoff_s=60, timeout_s=2, batch=50
    )
    hook = config.sinks[notices.SinkName("hook")]
    assert hook.secret is not None and hook.secret.get_secret_value() == world.SECRET
    assert world.SECRET not in repr(config) and config.report_url("r1") is None


def test_the_settings_name_the_file_from_the_environment(tmp_path: Path) -> None:
    path = world.config_file(tmp_path, "sinks: []\n")

    unset = routing.NotifySettings.from_env({})
    named = routing.NotifySettings.from_env(
        {"STORMDRILL_NOTIFICATIONS": str(path), "STORMDRILL_NOTIFICATIONS_INTERVAL_S": "2.5"}
    )

    assert unset.notifications is None and routing.from_settings(unset) is None
    assert named.notifications == path and named.notifications_interval_s == 2.5
    assert routing.from_settings(named, {}) == routing.Config(source=str(path))
