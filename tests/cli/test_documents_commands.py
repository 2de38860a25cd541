"""The scenario-language commands: validate, schema, scenarios list, actions."""

from __future__ import annotations

import json
import pathlib

from typer.testing import CliRunner

from drills import cli
from scenarios import library

RUNNER = CliRunner()

VALID_SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: scale-inventory
spec:
  description: Scale inventory to zero.
  failureMode: dependency
  hypothesis: Web stays up.
  targets:
    inventory:
      provider: kubernetes
      kind: deployment
      namespace: shop
      selector:
        labels:
          app.kubernetes.io/name: inventory
      blastRadius:
        max: 1
  guardrails:
    environments: [sandbox]
    maxDuration: 10m
  steps:
    - name: stop-inventory
      action: kubernetes.deployment.scale
      target: inventory
      with:
        replicas: 0
  objectives:
    rto: 5m
"""


def test_validate_accepts_the_bundled_library_and_examples_with_exit_0() -> None:
    result = RUNNER.invoke(cli.app, ["validate", str(library.folder()), "drills/examples"])

    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_validate_names_file_line_and_field_of_a_misspelt_action(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        VALID_SCENARIO.replace("kubernetes.deployment.scale", "kubernetes.deployment.scael")
    )

    result = RUNNER.invoke(cli.app, ["validate", str(path)])

    assert result.exit_code == 1
    assert f"{path}:24:15: spec.steps[0].action: unknown action 'kubernetes.deployment.scael'" in (
        result.output
    )
    assert "did you mean 'kubernetes.deployment.scale'?" in result.output
    assert "Traceback" not in result.output


def test_validate_checks_action_parameters_against_the_real_registry(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(VALID_SCENARIO.replace("replicas: 0", "replicas: -1"))

    result = RUNNER.invoke(cli.app, ["validate", str(path)])

    assert result.exit_code == 1
    assert f"{path}:27:19: spec.steps[0].with.replicas" in result.output


def test_validate_json_format_lists_problems_for_machines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(VALID_SCENARIO.replace("maxDuration: 10m", "maxDuration: 0s"))

    result = RUNNER.invoke(cli.app, ["validate", "--format", "json", str(path)])

    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["valid"] is False
    (problem,) = [p for p in body["problems"] if p["severity"] == "error"]
    assert problem["file"] == str(path)
    assert problem["line"] == 21
    assert problem["field"] == "spec.guardrails.maxDuration"


def test_validate_of_a_good_file_exits_0_and_counts_the_document(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(VALID_SCENARIO)

    result = RUNNER.invoke(cli.app, ["validate", str(path)])

    assert result.exit_code == 0, result.output
    assert "1 document(s), 0 error(s), 0 warning(s)" in result.output


def test_schema_prints_a_json_schema_per_kind() -> None:
    result = RUNNER.invoke(cli.app, ["schema", "Scenario"])

    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "spec" in schema["properties"]


def test_schema_of_an_unknown_kind_exits_1_naming_the_known_ones() -> None:
    result = RUNNER.invoke(cli.app, ["schema", "Scenaro"])

    assert result.exit_code == 1
    assert "Scenario, Drill, Environment" in result.output


def test_scenarios_list_shows_every_bundled_scenario() -> None:
    result = RUNNER.invoke(cli.app, ["scenarios", "list"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for name in library.names():
        assert name in result.output


def test_actions_lists_the_registered_actions_and_probes() -> None:
    result = RUNNER.invoke(cli.app, ["actions", "--format", "json"])

    assert result.exit_code == 0
    body = json.loads(result.output)
    actions = {a["name"]: a for a in body["actions"]}
    assert {"kubernetes.nodes.drain", "aws.network.isolate-subnets", "people.mark-unavailable"} <= (
        set(actions)
    )
    assert actions["kubernetes.nodes.drain"]["revertible"] is True
    assert "timeout" in actions["kubernetes.nodes.drain"]["params"]["properties"]
    assert {"http", "prometheus.query", "aws.cloudwatch-alarm"} <= {
        p["name"] for p in body["probes"]
    }


def test_actions_table_is_readable() -> None:
    result = RUNNER.invoke(cli.app, ["actions"])

    assert result.exit_code == 0
    assert "Actions" in result.output
    assert "Probes" in result.output
