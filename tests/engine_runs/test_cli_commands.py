"""`stormdrill runs list|show`, `killswitch on|off`, and bad input to `run`/`plan` (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer import testing

from drills import cli
from drills.service import audit
from orchestrator import journal, states
from sandbox import stack
from tests.engine_runs import support


def _cli(db_url: str, *args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env=support.cli_env(db_url))


def test_runs_list_and_show_in_json_newest_first_with_timeline_and_journal(
    shared_world: stack.Sandbox, db_url: str
) -> None:
    env = str(shared_world.info.environment)
    refused = _cli(
        db_url, "run", "az-failure-kubernetes", "--env", env, "--set", "maxNodes=1", "--yes"
    )
    assert refused.exit_code == 3, refused.output
    _cli(db_url, "killswitch", "on", "--reason", "second run")
    second = _cli(db_url, "run", "az-failure-aws", "--env", env, "--yes")
    assert second.exit_code == 3, second.output

    listed = _cli(db_url, "runs", "list", "--format", "json")

    assert listed.exit_code == 0, listed.output
    runs: list[dict[str, Any]] = json.loads(listed.stdout)
    assert [r["scenario"] for r in runs] == ["az-failure-aws", "az-failure-kubernetes"]
    assert [r["started_at"] for r in runs] == sorted((r["started_at"] for r in runs), reverse=True)
    assert all(r["state"] == "aborted" for r in runs)

    shown = _cli(db_url, "runs", "show", runs[0]["id"], "--format", "json")

    assert shown.exit_code == 0, shown.output
    body: dict[str, Any] = json.loads(shown.stdout)
    assert body["id"] == runs[0]["id"]
    assert "killswitch" in body["reason"]
    kinds = [event["kind"] for event in body["timeline"]]
    assert kinds[0] == "state" and "guardrail" in kinds
    assert body["journal"] == []
    assert body["record"]["refused"] is True
    with journal.open_store(db_url) as store:
        trail = audit.entries(store, where=audit.EntryFilter(action="run.start"), oldest_first=True)
    assert [(e.target, e.method, e.path) for e in trail] == [
        (f"runs/{r['id']}", "CLI", "stormdrill run") for r in reversed(runs)
    ]
    assert all("state=aborted" in e.detail and e.principal_kind == "local" for e in trail)


def test_runs_show_of_an_unknown_run_exits_3_without_a_traceback(db_url: str) -> None:
    result = _cli(db_url, "runs", "show", "no-such-run")

    assert result.exit_code == 3
    assert "no-such-run" in result.stderr
    assert "Traceback" not in result.output


def test_killswitch_on_and_off_engage_and_release_the_journal_switch(db_url: str) -> None:
    engaged = _cli(db_url, "killswitch", "on", "--reason", "incident 7")

    assert engaged.exit_code == 0, engaged.output
    assert "kill switch ENGAGED" in engaged.stdout
    with journal.open_store(db_url) as store:
        switch = store.killswitch()
        assert switch.engaged and switch.reason == "incident 7"

    released = _cli(db_url, "killswitch", "off")

    assert released.exit_code == 0, released.output
    with journal.open_store(db_url) as store:
        assert store.killswitch().engaged is False
        trail = audit.entries(store, oldest_first=True)
    assert [(e.action, e.path, e.detail) for e in trail] == [
        ("killswitch.engage", "stormdrill killswitch on", "reason=incident 7"),
        ("killswitch.release", "stormdrill killswitch off", ""),
    ]


def test_an_engaged_killswitch_makes_plan_exit_3_with_the_refusal_shown(
    shared_world: stack.Sandbox, db_url: str
) -> None:
    _cli(db_url, "killswitch", "on", "--reason", "freeze")

    result = _cli(
        db_url, "plan", "az-failure-kubernetes", "--env", str(shared_world.info.environment)
    )

    assert result.exit_code == 3, result.output
    assert "REFUSED" in result.stdout and "kill switch is engaged" in result.stdout


@pytest.mark.parametrize("command", [("run", "--yes"), ("plan",)], ids=["run", "plan"])
def test_an_unknown_scenario_name_suggests_the_closest_one(
    shared_world: stack.Sandbox, db_url: str, command: tuple[str, ...]
) -> None:
    env = str(shared_world.info.environment)
    result = _cli(db_url, command[0], "az-failure-kubernets", "--env", env, *command[1:])

    assert result.exit_code == 3, result.output
    assert "no Scenario named 'az-failure-kubernets'" in result.stderr
    assert "did you mean 'az-failure-kubernetes'?" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [("run", "--yes"), ("plan",)], ids=["run", "plan"])
def test_an_unknown_set_name_names_the_scenario_file_line_and_the_parameter(
    shared_world: stack.Sandbox, db_url: str, command: tuple[str, ...]
) -> None:
    env = str(shared_world.info.environment)
    result = _cli(
        db_url,
        command[0],
        "az-failure-kubernetes",
        "--env",
        env,
        "--set",
        "maxNode=1",
        *command[1:],
    )

    assert result.exit_code == 3, result.output
    assert "scenarios/library/az-failure-kubernetes.yaml:" in result.stderr
    assert "spec.parameters.maxNode" in result.stderr
    assert "did you mean 'maxNodes'?" in result.stderr
    assert "Traceback" not in result.output
    with journal.open_store(db_url) as store:
        assert store.list_runs() == []


@pytest.mark.parametrize("command", [("run", "--yes"), ("plan",)], ids=["run", "plan"])
def test_a_missing_env_file_exits_3_naming_the_file(
    db_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "nowhere" / "environment.yaml"

    result = _cli(db_url, command[0], "az-failure-kubernetes", "--env", str(missing), *command[1:])

    assert result.exit_code == 3, result.output
    assert f"--env {missing}: no such file" in result.stderr
    assert "Traceback" not in result.output


def test_an_env_file_with_a_bad_field_exits_3_naming_file_line_and_field(
    shared_world: stack.Sandbox, db_url: str, tmp_path: Path
) -> None:
    def misspell(doc: dict[str, Any]) -> None:
        doc["spec"]["timescale"] = doc["spec"].pop("timeScale")

    env = support.environment_variant(shared_world, tmp_path / "bad.yaml", misspell)

    result = _cli(db_url, "run", "az-failure-kubernetes", "--env", str(env), "--yes")

    assert result.exit_code == 3, result.output
    assert f"{env}:" in result.stderr
    assert "timescale" in result.stderr
    assert "Traceback" not in result.output


def test_a_set_value_of_the_wrong_type_names_the_parameter(
    shared_world: stack.Sandbox, db_url: str
) -> None:
    env = str(shared_world.info.environment)
    result = _cli(db_url, "plan", "az-failure-kubernetes", "--env", env, "--set", "maxNodes=two")

    assert result.exit_code == 3, result.output
    assert "spec.parameters.maxNodes" in result.stderr and "expected an integer" in result.stderr


def test_runs_show_lists_the_journal_of_a_run_that_touched_something(
    world: stack.Sandbox, db_url: str
) -> None:
    env = str(world.info.environment)
    ran = _cli(
        db_url, "run", "az-power-loss-kubernetes", "--env", env, "--set", "outage=30s", "--yes"
    )
    assert ran.exit_code in (0, 1, 2), ran.output
    with journal.open_store(db_url) as store:
        [run] = store.list_runs()
        assert run.state in states.TERMINAL

    shown = _cli(db_url, "runs", "show", run.id, "--format", "json")

    body: dict[str, Any] = json.loads(shown.stdout)
    assert [e["state"] for e in body["journal"]] == ["reverted", "reverted"]
    assert {e["action"] for e in body["journal"]} == {"kubernetes.nodes.taint"}
