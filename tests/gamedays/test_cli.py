"""`stormdrill gamedays …` through the real CLI app on a tmp SQLite store (migrated at open):
the whole lifecycle, JSON output, refusals exiting 3 with one line, and the audit trail."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer import testing

from drills import cli
from drills.service import audit
from orchestrator import journal, records, states
from tests.engine_runs import support as run_support
from tests.gamedays import support
from tests.gamedays.support import ALICE, BOB

RUNNER = testing.CliRunner()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'store.db'}"


def _cli(db_url: str, *args: str) -> testing.Result:
    return RUNNER.invoke(cli.app, ["gamedays", *args], env=run_support.cli_env(db_url))


def test_a_game_day_is_created_started_noted_gated_and_closed_from_the_cli(
    db_url: str,
) -> None:
    created = _cli(db_url, "create", str(support.EXAMPLE))
    assert created.exit_code == 0, created.output
    assert "created game day checkout-gameday" in created.output
    assert "2026-12-08 10:00 Europe/Berlin" in created.output

    # the example's window is a fixed date: started with --force, whatever the day
    forced = _cli(db_url, "start", "checkout-gameday", "--force")
    assert forced.exit_code == 0, forced.output
    noted = _cli(db_url, "note", "checkout-gameday", "nodes draining", "--by", BOB)
    assert noted.exit_code == 0, noted.output
    found = _cli(
        db_url,
        *("note", "checkout-gameday", "checkout PDB missing", "--by", ALICE, "--finding"),
        *("--owner", "team-payments", "--due", "2026-12-31", "--ticket", "https://t.example/1"),
    )
    assert found.exit_code == 0, found.output
    assert "added finding to checkout-gameday" in found.output
    closed = _cli(db_url, "close", "checkout-gameday", "--verdict", "Checkout held.")
    assert closed.exit_code == 0, closed.output

    shown = _cli(db_url, "show", "checkout-gameday", "--format", "json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert (data["state"], data["verdict"], data["timezone"]) == (
        "closed",
        "Checkout held.",
        "Europe/Berlin",
    )
    assert data["windowStart"] == "2026-12-08T09:00:00+00:00"
    assert [d["gate"] for d in data["drills"]] == ["auto", "manual"]
    assert data["drills"][0]["decision"] == "go" and data["drills"][0]["decidedBy"] == "auto"
    assert data["drills"][1]["scenario"] == "third-party-outage"
    assert [(n["author"], n["kind"]) for n in data["notes"]] == [
        (BOB, "note"),
        (ALICE, "finding"),
    ]
    assert data["notes"][1]["actionOwner"] == "team-payments"
    assert data["notes"][1]["due"] == "2026-12-31"
    assert data["notes"][1]["ticketUrl"] == "https://t.example/1"

    with journal.open_store(db_url) as store:
        actions = [e.action for e in audit.entries(store)]
    assert sorted(actions) == sorted(
        ["gameday.create", "gameday.start", "gameday.note", "gameday.note", "gameday.close"]
    )
    with journal.open_store(db_url) as store:
        [started] = audit.entries(store, where=audit.EntryFilter(action="gameday.start"))
    assert started.detail.startswith("forced")


def test_list_and_show_print_tables(db_url: str) -> None:
    _cli(db_url, "create", str(support.EXAMPLE))

    listed = _cli(db_url, "list")
    shown = _cli(db_url, "show", "checkout-gameday")
    as_json = _cli(db_url, "list", "--format", "json")

    assert listed.exit_code == 0 and shown.exit_code == 0, listed.output + shown.output
    assert "checkout-gameday" in listed.output and "planned" in listed.output
    assert "user:default/alice" in listed.output
    assert "third-party-outage @ staging" in shown.output
    assert "scribe, observer" in shown.output or "observer, scribe" in shown.output
    assert [d["name"] for d in json.loads(as_json.stdout)] == ["checkout-gameday"]


def test_a_manual_gate_decided_by_a_non_facilitator_exits_3_naming_the_facilitator(
    db_url: str, tmp_path: Path
) -> None:
    path = support.write(
        tmp_path,
        support.document(gates=("manual", "manual", "manual"), window=support.window_around_now()),
    )
    _cli(db_url, "create", str(path))
    assert _cli(db_url, "start", "checkout-gameday").exit_code == 0

    refused = _cli(db_url, "gate", "checkout-gameday", "1", "go", "--by", BOB)
    decided = _cli(db_url, "gate", "checkout-gameday", "1", "go", "--by", ALICE)

    assert refused.exit_code == 3
    assert "only the facilitator (user:default/alice)" in refused.output
    assert decided.exit_code == 0, decided.output
    assert "gate of drill 1 in checkout-gameday: go" in decided.output
    with journal.open_store(db_url) as store:
        gates = [e for e in audit.entries(store) if e.action == "gameday.gate"]
    assert [e.detail for e in gates] == ["1: go"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "nope"), "no game day has the id or name 'nope'"),
        (
            ("close", "checkout-gameday", "--verdict", "x"),
            "cannot close a game day that is planned",
        ),
        (("note", "checkout-gameday", "x", "--by", BOB, "--owner", "a"), "add --finding"),
        (
            ("note", "checkout-gameday", "x", "--by", BOB, "--finding", "--due", "soon"),
            "--due 'soon': write a date as YYYY-MM-DD",
        ),
    ],
)
def test_mistakes_exit_3_with_one_line_naming_the_fix(
    db_url: str, args: tuple[str, ...], message: str
) -> None:
    assert _cli(db_url, "create", str(support.EXAMPLE)).exit_code == 0

    result = _cli(db_url, *args)

    assert result.exit_code == 3, result.output
    assert message in result.output


def test_a_bad_document_exits_3_naming_the_file_and_field(db_url: str, tmp_path: Path) -> None:
    path = support.write(tmp_path, support.document().replace("gate: manual", "gate: maybe"))

    result = _cli(db_url, "create", str(path))

    assert result.exit_code == 3
    assert str(path) in result.output and "spec.drills.1.gate:" in result.output
    assert json.loads(_cli(db_url, "list", "--format", "json").stdout) == []


def test_an_unknown_gate_decision_is_a_usage_error(db_url: str) -> None:
    _cli(db_url, "create", str(support.EXAMPLE))

    result = _cli(db_url, "gate", "checkout-gameday", "2", "maybe", "--by", ALICE)

    assert result.exit_code == 2
    assert "go" in result.output and "no-go" in result.output


def _ended_run(store: journal.Journal, run_id: str, verdict: states.Verdict | None) -> None:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="az-failure-kubernetes",
        environment="staging",
        environment_source="staging.environment.yaml",
        owner=states.Owner(host="test-host", pid=4242, token="boot:1"),
        at=datetime(2026, 12, 8, 9, 5, tzinfo=UTC),
        record=records.RunRecord(parameters={}, time_scale=1.0),
    )
    ended = states.RunState.COMPLETED if verdict else states.RunState.OBSERVING
    store.create_run(dataclasses.replace(run, state=ended, verdict=verdict))


def test_result_takes_the_verdict_of_a_run_or_a_tabletop_verdict_and_opens_the_next_gate(
    db_url: str,
) -> None:
    _cli(db_url, "create", str(support.EXAMPLE))
    assert _cli(db_url, "start", "checkout-gameday", "--force").exit_code == 0
    with journal.open_store(db_url) as store:
        _ended_run(store, "20261208T090500Z-aa11bb22", states.Verdict.DEVIATED)
        _ended_run(store, "20261208T091000Z-cc33dd44", None)

    unfinished = _cli(db_url, "result", "checkout-gameday", "1", "--run", "cc33")
    neither = _cli(db_url, "result", "checkout-gameday", "1")
    both = _cli(db_url, "result", "checkout-gameday", "1", "--run", "aa11", "--verdict", "held")
    recorded = _cli(db_url, "result", "checkout-gameday", "1", "--run", "aa11")
    again = _cli(db_url, "result", "checkout-gameday", "1", "--verdict", "held")
    gated = _cli(db_url, "gate", "checkout-gameday", "2", "no-go", "--by", ALICE)

    assert unfinished.exit_code == 3 and "has no verdict yet" in unfinished.stderr
    assert neither.exit_code == 3 and "exactly one of --run" in neither.stderr
    assert both.exit_code == 3
    assert recorded.exit_code == 0, recorded.output
    assert "drill 1 of checkout-gameday: deviated" in recorded.output
    assert again.exit_code == 3 and "has its verdict already (deviated)" in again.stderr
    assert gated.exit_code == 0, gated.output
    data = json.loads(_cli(db_url, "show", "checkout-gameday", "--format", "json").stdout)
    assert (data["drills"][0]["runId"], data["drills"][0]["verdict"]) == (
        "20261208T090500Z-aa11bb22",
        "deviated",
    )
    assert (data["drills"][1]["decision"], data["drills"][1]["decidedBy"]) == ("no-go", ALICE)
    with journal.open_store(db_url) as store:
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.result"))
    assert entry.detail == "1: deviated (run 20261208T090500Z-aa11bb22)"
