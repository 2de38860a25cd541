"""`--format yaml` and `-o` on `validate`, `scenarios list` and `run` (issue 11, item 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer import testing

from drills import cli
from drills.commands import running
from orchestrator import records
from sandbox import stack
from tests.engine_runs import support

_BAD = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: Bad Name
spec:
  failureMode: availability-zone
  description: two mistakes
  steps: []
"""


def _invoke(tmp_path: Path, *args: str) -> testing.Result:
    env = {
        "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'stormdrill.db'}",
        "STORMDRILL_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return testing.CliRunner().invoke(cli.app, list(args), env=env)


def test_validate_as_yaml_is_the_same_view_as_json_and_keeps_the_exit_code(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_BAD, encoding="utf-8")

    as_json = _invoke(tmp_path, "validate", str(bad), "--format", "json")
    as_yaml = _invoke(tmp_path, "validate", str(bad), "--format", "yaml")

    assert as_json.exit_code == as_yaml.exit_code == 1
    data = json.loads(as_json.stdout)
    assert yaml.safe_load(as_yaml.stdout) == data
    assert data["valid"] is False
    assert {p["file"] for p in data["problems"]} == {str(bad)}
    assert all(p["line"] >= 1 for p in data["problems"])


def test_validate_writes_its_lines_to_the_output_file_and_nothing_to_stdout(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_BAD, encoding="utf-8")
    out = tmp_path / "out" / "problems.txt"

    result = _invoke(tmp_path, "validate", str(bad), "-o", str(out))

    assert result.exit_code == 1
    assert result.stdout == ""
    written = out.read_text(encoding="utf-8").splitlines()
    assert written[-1].startswith("0 document(s), ")
    assert all(line.startswith(f"{bad}:") for line in written[:-1])


def test_validate_takes_table_as_the_text_format(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "validate", "--format", "table", str(tmp_path / "missing.yaml"))

    assert result.exit_code == 1
    assert "missing.yaml" in result.stderr


def test_scenarios_list_speaks_json_yaml_and_writes_a_plain_table_to_a_file(
    tmp_path: Path,
) -> None:
    as_json = json.loads(_invoke(tmp_path, "scenarios", "list", "--format", "json").stdout)
    as_yaml = yaml.safe_load(_invoke(tmp_path, "scenarios", "list", "--format", "yaml").stdout)
    out = tmp_path / "scenarios.txt"
    to_file = _invoke(tmp_path, "scenarios", "list", "-o", str(out))

    assert as_json == as_yaml
    names = [s["name"] for s in as_json["scenarios"]]
    assert names == sorted(names) and "key-person-loss" in names
    assert {"name", "failure_mode", "rto", "description", "file"} <= set(as_json["scenarios"][0])
    assert to_file.exit_code == 0 and to_file.stdout == ""
    table = out.read_text(encoding="utf-8")
    assert "key-person-loss" in table and "\x1b[" not in table


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path_factory.mktemp("formats-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


def test_run_as_json_prints_the_finished_run_on_stdout_and_the_timeline_on_stderr(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    result = _invoke(
        tmp_path,
        "run",
        "third-party-outage",
        "--env",
        str(world.info.environment),
        "-y",
        "--format",
        "json",
        "-o",
        str(out),
    )

    # 0 (hypothesis held) or 1 (deviated: a loaded machine can miss the scaled RTO)
    assert result.exit_code in (0, 1), result.output
    assert result.stdout == "", "with -o, stdout carries nothing"
    assert "state planning" in " ".join(result.stderr.split())
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["state"] == "completed"
    assert data["verdict"] == ("held" if result.exit_code == 0 else "deviated")
    assert data["scenario"] == "third-party-outage"
    assert any(e["kind"] == "state" for e in data["timeline"])
    assert data["journal"] and all(e["state"] == "reverted" for e in data["journal"])


def test_run_dry_run_takes_the_format_too(world: stack.Sandbox, tmp_path: Path) -> None:
    result = _invoke(
        tmp_path,
        "run",
        "third-party-outage",
        "--env",
        str(world.info.environment),
        "--dry-run",
        "--format",
        "yaml",
    )

    assert result.exit_code == 0, result.output
    plan = yaml.safe_load(result.stdout)
    assert plan["steps"] and "rollback" in " ".join(plan)


def test_the_run_summary_rounds_the_rto_and_gives_the_real_world_figure() -> None:
    objectives = records.Objectives(
        achieved_rto_s=12.285431,
        target_rto_s=300.0,
        scaled_target_rto_s=6.0,
        time_scale=0.02,
        real_world_rto_s=614.27,
    )

    line = running._rto_line(objectives)

    assert line == (
        "12 s (target 6 s at time scale 0.02; about 10 min 14 s in a real outage, objective 5 min)"
    )
