"""`stormdrill gamedays run` through the real CLI app on a tmp SQLite store: a people-only
drill driven in the foreground, its verdict and the next gate printed and recorded, the
key-person absence shown, refusals exiting 3 with one line, and the audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer import testing

from drills import cli
from drills.service import audit
from orchestrator import journal
from tests.engine_runs import support as run_support
from tests.gamedays import drilling, support
from tests.gamedays.support import DAVE

RUNNER = testing.CliRunner()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'store.db'}"


@pytest.fixture
def day_file(tmp_path: Path) -> Path:
    folder = tmp_path / "gameday"
    drilling.write_world(folder)
    path = folder / "day.gameday.yaml"
    path.write_text(drilling.document(window=support.window_around_now()))
    return path


def _cli(db_url: str, *args: str, user: str = "bob") -> testing.Result:
    env = {**run_support.cli_env(db_url), "USER": user}
    return RUNNER.invoke(cli.app, ["gamedays", *args], env=env)


def test_a_drill_runs_from_the_game_day_and_its_verdict_opens_the_next_gate(
    db_url: str, day_file: Path
) -> None:
    assert _cli(db_url, "create", str(day_file)).exit_code == 0
    assert _cli(db_url, "start", "people-gameday").exit_code == 0

    ran = _cli(db_url, "run", "people-gameday", "1")  # --by defaults to $USER: bob

    assert ran.exit_code == 0, ran.output
    assert "drill 1 of people-gameday: run " in ran.output
    assert "applied #1: people.mark-unavailable on people person user:default/dave" in ran.output
    assert "COMPLETED verdict=held" in ran.output
    assert (
        "drill 1 of people-gameday: held; gate of drill 2: go (auto);"
        f" absent in the game day: {DAVE}" in ran.output
    )
    shown = _cli(db_url, "show", "people-gameday", "--format", "json")
    data = json.loads(shown.stdout)
    first = data["drills"][0]
    assert (first["verdict"], first["runId"] is not None) == ("held", True)
    assert [p["person"] for p in data["participants"] if p["absent"]] == [DAVE]
    with journal.open_store(db_url) as store:
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.run"))
        run = store.get_run(first["runId"])
    assert entry.detail == f"1: run {run.id} by bob"
    assert entry.target == f"gamedays/{data['id']}"
    assert run.record.trigger is not None and run.record.trigger.kind.value == "gameday"


@pytest.mark.parametrize(
    ("user", "position", "message"),
    [
        ("erin", "1", "may not run drills; an operator or the facilitator runs them"),
        ("bob", "2", "drill 2's gate is undecided"),
        ("bob", "9", "no drill at position 9"),
    ],
)
def test_a_refused_run_exits_3_with_one_line(
    db_url: str, day_file: Path, user: str, position: str, message: str
) -> None:
    _cli(db_url, "create", str(day_file))
    _cli(db_url, "start", "people-gameday")

    refused = _cli(db_url, "run", "people-gameday", position, "--by", user)

    assert refused.exit_code == 3, refused.output
    [line] = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert message in line
    with journal.open_store(db_url) as store:
        assert store.list_runs(limit=None) == []
        assert audit.entries(store, where=audit.EntryFilter(action="gameday.run")) == []


def test_running_a_slot_twice_is_refused_naming_its_run(db_url: str, day_file: Path) -> None:
    _cli(db_url, "create", str(day_file))
    _cli(db_url, "start", "people-gameday")
    assert _cli(db_url, "run", "people-gameday", "1").exit_code == 0

    again = _cli(db_url, "run", "people-gameday", "1", "--by", "alice")

    assert again.exit_code == 3
    assert "drill 1 was started already as run" in again.stderr
