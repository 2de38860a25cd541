"""Run ids people can type (issue 11, item 3): prefixes, `latest`, short ids and list filters.

The service (`runs.resolve_id`, `runs.short_ids`, `runs.parse_since`, `runs.list_runs` with a
`RunFilter`) against a real store, and every command that takes a run id through the CLI.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer import testing

from drills import cli
from drills.service import audit, runs
from orchestrator import events, journal, records, states

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_S = states.RunState


def _run(
    run_id: str,
    *,
    hours_ago: float,
    state: states.RunState = _S.COMPLETED,
    scenario: str = "az-failure-kubernetes",
    environment: str = "sandbox",
) -> states.Run:
    at = NOW - timedelta(hours=hours_ago)
    run = states.new_run(
        id=states.RunId(run_id),
        scenario=scenario,
        environment=environment,
        environment_source="sandbox/environment.yaml",
        owner=states.Owner(host="test-host", pid=4242, token="boot:1"),
        at=at,
        record=records.RunRecord(parameters={}, time_scale=1.0),
    )
    return dataclasses.replace(run, state=state)


NEWEST = "20250301T110000Z-3f9a1c2b"
OLDER = "20250228T120000Z-3f11aa00"
OLDEST = "20250220T120000Z-bc0de111"


def _seed(store: journal.Journal) -> None:
    store.create_run(_run(NEWEST, hours_ago=1, state=_S.OBSERVING))
    store.create_run(_run(OLDER, hours_ago=24, scenario="key-person-loss", environment="staging"))
    store.create_run(_run(OLDEST, hours_ago=24 * 9, state=_S.FAILED, scenario="az-failure-aws"))


@pytest.fixture
def seeded(store_url: str) -> str:
    with journal.open_store(store_url) as store:
        _seed(store)
    return store_url


def _cli(url: str, *args: str) -> testing.Result:
    env = {"STORMDRILL_DATABASE_URL": url, "COLUMNS": "80"}
    return testing.CliRunner().invoke(cli.app, list(args), env=env)


# ---- the service ------------------------------------------------------------------------


def test_resolve_id_takes_a_full_id_a_unique_prefix_a_random_part_prefix_and_latest(
    seeded: str,
) -> None:
    with journal.open_store(seeded) as store:
        assert runs.resolve_id(store, OLDER) == OLDER
        assert runs.resolve_id(store, "20250220") == OLDEST
        assert runs.resolve_id(store, "bc0d") == OLDEST
        assert runs.resolve_id(store, "3f9a") == NEWEST
        assert runs.resolve_id(store, "latest") == NEWEST
        assert runs.resolve_id(store, " LATEST ") == NEWEST


def test_resolve_id_refuses_an_ambiguous_prefix_listing_every_candidate_newest_first(
    seeded: str,
) -> None:
    with journal.open_store(seeded) as store, pytest.raises(runs.AmbiguousRunId) as caught:
        runs.resolve_id(store, "3f")
    assert caught.value.candidates == (NEWEST, OLDER)
    message = str(caught.value)
    assert "ambiguous" in message and "matches 2 runs" in message
    assert NEWEST in message and OLDER in message and OLDEST not in message
    assert "Type more of the id" in message


def test_resolve_id_refuses_an_unknown_id_naming_the_store_and_what_works(seeded: str) -> None:
    with journal.open_store(seeded) as store, pytest.raises(runs.UnknownRun) as caught:
        runs.resolve_id(store, "nope")
    assert "no run 'nope'" in str(caught.value)
    assert "stormdrill runs list" in str(caught.value) and "latest" in str(caught.value)


def test_latest_in_an_empty_store_is_an_unknown_run(store_url: str) -> None:
    with journal.open_store(store_url) as store, pytest.raises(runs.UnknownRun) as caught:
        runs.resolve_id(store, "latest")
    assert "has no runs yet" in str(caught.value)


def test_short_ids_are_the_random_part_unless_another_run_shares_it(sqlite_url: str) -> None:
    twin = "20250301T100000Z-3f9a1c2b"
    with journal.open_store(sqlite_url) as store:
        _seed(store)
        store.create_run(_run(twin, hours_ago=2))
        shown = store.list_runs(limit=None)
        short = runs.short_ids(store, shown)
        assert short[states.RunId(OLDER)] == "3f11aa00"
        assert short[states.RunId(OLDEST)] == "bc0de111"
        assert short[states.RunId(NEWEST)] == NEWEST
        assert short[states.RunId(twin)] == twin
        for run_id, text in short.items():
            assert runs.resolve_id(store, text) == run_id


def test_parse_since_takes_a_duration_back_from_now_or_an_iso_date() -> None:
    assert runs.parse_since("2h", now=NOW) == NOW - timedelta(hours=2)
    assert runs.parse_since("7d", now=NOW) == NOW - timedelta(days=7)
    assert runs.parse_since("2025-02-27", now=NOW) == datetime(2025, 2, 27, tzinfo=UTC)
    offset = runs.parse_since("2025-02-27T12:00+01:00", now=NOW)
    assert offset == datetime(2025, 2, 27, 11, 0, tzinfo=UTC)
    with pytest.raises(runs.BadSince) as caught:
        runs.parse_since("yesterday", now=NOW)
    assert "2h" in str(caught.value) and "ISO" in str(caught.value)


def test_list_runs_filters_by_state_scenario_environment_and_since(seeded: str) -> None:
    with journal.open_store(seeded) as store:
        observing = runs.list_runs(store, where=runs.RunFilter(state=frozenset({_S.OBSERVING})))
        staging = runs.list_runs(store, where=runs.RunFilter(environment="staging"))
        aws = runs.list_runs(store, where=runs.RunFilter(scenario="az-failure-aws"))
        recent = runs.list_runs(store, where=runs.RunFilter(since=NOW - timedelta(days=2)))
        one = runs.list_runs(store, limit=1)
    assert [r.id for r in observing.runs] == [NEWEST]
    assert [r.id for r in staging.runs] == [OLDER]
    assert [r.id for r in aws.runs] == [OLDEST]
    assert [r.id for r in recent.runs] == [NEWEST, OLDER]
    assert [r.id for r in one.runs] == [NEWEST] and one.next_cursor is not None


# ---- the CLI ----------------------------------------------------------------------------


def test_runs_list_at_80_columns_shows_ids_every_command_takes_and_names_the_store(
    sqlite_url: str,
) -> None:
    with journal.open_store(sqlite_url) as store:
        _seed(store)

    result = _cli(sqlite_url, "runs", "list")

    assert result.exit_code == 0, result.output
    for short in ("3f9a1c2b", "3f11aa00", "bc0de111"):
        assert short in result.stdout
    assert "…" not in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert result.stderr.strip() == f"store: {sqlite_url} (STORMDRILL_DATABASE_URL)"
    for short in ("3f9a1c2b", "3f11aa00", "bc0de111"):
        shown = _cli(sqlite_url, "runs", "show", short, "--format", "json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["id"].endswith(short)


def test_runs_list_filters_and_limits(sqlite_url: str) -> None:
    with journal.open_store(sqlite_url) as store:
        _seed(store)

    def ids(*args: str) -> list[str]:
        result = _cli(sqlite_url, "runs", "list", "--format", "json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--state", "observing", "--state", "failed") == [NEWEST, OLDEST]
    assert ids("--scenario", "key-person-loss") == [OLDER]
    assert ids("--env", "sandbox") == [NEWEST, OLDEST]
    assert ids("--since", "2025-02-25") == [NEWEST, OLDER]
    assert ids("--limit", "2") == [NEWEST, OLDER]
    assert ids("--since", "36500d") == [NEWEST, OLDER, OLDEST]


def test_runs_list_refuses_a_bad_since_or_state_with_exit_3_or_2(sqlite_url: str) -> None:
    bad_since = _cli(sqlite_url, "runs", "list", "--since", "yesterday")
    bad_state = _cli(sqlite_url, "runs", "list", "--state", "sleeping")

    assert bad_since.exit_code == 3 and "--since 'yesterday'" in bad_since.stderr
    assert bad_state.exit_code == 2 and "sleeping" in bad_state.stderr


def test_abort_ack_report_and_recover_take_a_prefix_or_latest(
    sqlite_url: str, tmp_path: Path
) -> None:
    with journal.open_store(sqlite_url) as store:
        _seed(store)

    aborted = _cli(sqlite_url, "abort", "latest")
    refused_ack = _cli(sqlite_url, "ack", "3f9a", "page-on-call", "--evidence", "x", "--by", "z")
    ended = _cli(sqlite_url, "abort", "bc0d")
    report = _cli(sqlite_url, "report", "bc0d", "-o", str(tmp_path / "pm.md"))
    recovered = _cli(sqlite_url, "recover", "--run", "3f11")

    assert aborted.exit_code == 0, aborted.output
    assert f"abort requested for {NEWEST}" in aborted.stdout
    with journal.open_store(sqlite_url) as store:
        kinds = [e.kind for e in store.events(states.RunId(NEWEST))]
    assert events.EventKind.ABORT_REQUEST in kinds
    with journal.open_store(sqlite_url) as store:
        trail = audit.entries(store)
    assert [(e.action, e.target, e.path) for e in trail] == [
        ("run.abort", f"runs/{NEWEST}", "stormdrill abort")
    ], "only what was done is audited: not the refused ack, not the abort of an ended run"
    assert refused_ack.exit_code == 3 and "no run" not in refused_ack.stderr
    assert ended.exit_code == 1 and f"run {OLDEST} already ended (failed)" in ended.stderr
    assert report.exit_code == 0, report.output
    assert OLDEST in (tmp_path / "pm.md").read_text(encoding="utf-8")
    assert recovered.exit_code == 0, recovered.output
    assert "no unfinished runs to recover" in recovered.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("abort", "3f"),
        ("ack", "3f", "step", "--evidence", "x"),
        ("report", "3f"),
        ("runs", "show", "3f"),
        ("recover", "--run", "3f"),
    ],
)
def test_every_command_taking_a_run_id_refuses_an_ambiguous_prefix_with_exit_3(
    sqlite_url: str, args: tuple[str, ...]
) -> None:
    with journal.open_store(sqlite_url) as store:
        _seed(store)

    result = _cli(sqlite_url, *args)

    assert result.exit_code == 3, result.output
    assert "ambiguous" in result.stderr and NEWEST in result.stderr and OLDER in result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_run_id_exits_3_naming_what_works(sqlite_url: str) -> None:
    with journal.open_store(sqlite_url) as store:
        _seed(store)

    result = _cli(sqlite_url, "runs", "show", "zzzz")

    assert result.exit_code == 3
    assert "no run 'zzzz'" in result.stderr and "latest" in result.stderr


def test_runs_list_at_80_columns_keeps_long_scenario_names_and_states_whole(
    store_url: str,
) -> None:
    with journal.open_store(store_url) as store:
        store.create_run(
            _run(
                "20250301T110000Z-77aa88bb",
                hours_ago=1,
                state=_S.ROLLING_BACK,
                scenario="az-power-loss-kubernetes",
                environment="staging-eu-west",
            )
        )

    result = _cli(store_url, "runs", "list")

    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    row = next(line for line in result.stdout.splitlines() if "77aa88bb" in line)
    assert row.split()[:4] == [
        "77aa88bb",
        "az-power-loss-kubernetes",
        "staging-eu-west",
        "rolling_back",
    ]
    assert "…" not in result.stdout
