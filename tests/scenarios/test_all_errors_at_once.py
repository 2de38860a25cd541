"""All errors at once: one `validate` run reports every independent mistake of a file.

The scenario below holds nine mistakes of different kinds (a parameter default of the wrong
type, a percentage over 100, a bad duration, a wrong type, an unknown target reference, an
unknown field, a destructive action without a blast radius, an unknown action, a template
naming an undeclared parameter); before, they surfaced over five rounds of `validate`.
"""

from __future__ import annotations

import json
import pathlib

from typer import testing

from drills import cli
from scenarios import loading

BROKEN = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: card-vendor-outage
spec:
  description: The card vendor goes away.
  failureMode: third-party
  hypothesis: Checkout falls back to the second vendor.
  parameters:
    replicas:
      type: integer
      default: lots
    soak:
      type: duration
      default: 1m
  targets:
    checkout:
      provider: kubernetes
      kind: deployment
      namespace: shop
      selector:
        names: [checkout]
      blastRadius:
        max: 150%
    web:
      provider: kubernetes
      kind: deployment
      namespace: shop
      selector:
        names: [web]
  steadyState:
    - name: checkout-healthy
      type: http
      with:
        url: http://checkout.shop/healthz
      interval: 5 secs
      tolerance: two
  guardrails:
    environments: [sandbox]
    maxDuration: 10m
  steps:
    - name: scale-checkout
      action: kubernetes.deployment.scale
      target: checkout-deploy
      tiemout: 5m
      with:
        replicas: 0
    - name: scale-web
      action: kubernetes.deployment.scale
      target: web
      with:
        replicas: "{{ replicas }}"
    - name: scale-web-again
      action: kubernetes.deployment.scael
      target: web
      with:
        replicas: 1
    - name: hold
      wait: "{{ soakTime }}"
  objectives:
    rto: 5m
"""

FIXES = (
    ("      default: lots\n", "      default: 2\n"),
    ("        max: 150%\n", "        max: 50%\n"),
    ("      interval: 5 secs\n", "      interval: 5s\n"),
    ("      tolerance: two\n", "      tolerance: 2\n"),
    ("      target: checkout-deploy\n", "      target: checkout\n"),
    ("      tiemout: 5m\n", ""),
    ("        names: [web]\n", "        names: [web]\n      blastRadius:\n        max: 1\n"),
    ("kubernetes.deployment.scael", "kubernetes.deployment.scale"),
    ("{{ soakTime }}", "{{ soak }}"),
)

EXPECTED = [
    "10:5: spec.parameters.replicas: expected an integer, got a string ('lots')",
    "24:14: spec.targets.checkout.blastRadius.max: percentages cannot exceed 100%, got '150%'",
    "36:17: spec.steadyState[0].interval: '5 secs' is not a duration",
    "37:18: spec.steadyState[0].tolerance: expected an integer, got a string ('two')",
    "44:15: spec.steps[0].target: unknown target 'checkout-deploy' (did you mean 'checkout'?)",
    "45:7: spec.steps[0].tiemout: unknown field 'tiemout'",
    "50:15: spec.steps[1].target: action 'kubernetes.deployment.scale' is destructive but"
    " target 'web' has no blastRadius",
    "54:15: spec.steps[2].action: unknown action 'kubernetes.deployment.scael'"
    " (did you mean 'kubernetes.deployment.scale'?)",
    "59:13: spec.steps[3].wait: unknown parameter 'soakTime' in '{{ soakTime }}'",
]


def _validate(*paths: pathlib.Path, output: str = "text") -> testing.Result:
    args = ["validate", *(str(path) for path in paths), "--format", output]
    return testing.CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})


def _write(folder: pathlib.Path, text: str, name: str = "scenario.yaml") -> pathlib.Path:
    path = folder / name
    path.write_text(text)
    return path


def test_one_validate_run_reports_all_nine_mistakes_each_with_file_line_and_column(
    tmp_path: pathlib.Path,
) -> None:
    path = _write(tmp_path, BROKEN)

    result = _validate(path)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(EXPECTED), result.stderr
    for line, expected in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"{path}:{expected}"), (line, expected)
    assert "0 document(s), 9 error(s), 0 warning(s)" in result.stdout


def test_the_scenario_with_its_nine_mistakes_fixed_is_valid(tmp_path: pathlib.Path) -> None:
    fixed = BROKEN
    for mistake, fix in FIXES:
        assert mistake in fixed
        fixed = fixed.replace(mistake, fix)

    result = _validate(_write(tmp_path, fixed))

    assert result.exit_code == 0, result.stderr
    assert "1 document(s), 0 error(s), 0 warning(s)" in result.stdout


def test_each_fix_removes_exactly_its_own_problem(tmp_path: pathlib.Path) -> None:
    text = BROKEN
    for round_, (mistake, fix) in enumerate(FIXES, start=1):
        text = text.replace(mistake, fix)
        result = _validate(_write(tmp_path, text))
        errors_left = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors_left) == len(FIXES) - round_, (round_, result.stderr)


def test_loading_alone_reports_parameters_templates_schema_and_references_together(
    tmp_path: pathlib.Path,
) -> None:
    result = loading.load_documents([_write(tmp_path, BROKEN)])

    fields = [problem.field for problem in result.problems]
    assert fields == [
        "spec.parameters.replicas",
        "spec.targets.checkout.blastRadius.max",
        "spec.steadyState[0].interval",
        "spec.steadyState[0].tolerance",
        "spec.steps[0].target",
        "spec.steps[0].tiemout",
        "spec.steps[3].wait",
    ]
    assert result.documents == ()
    assert len(result.partial) == 1
    assert result.blocked == ()


def test_a_step_naming_a_target_whose_blast_radius_is_broken_gets_no_blast_radius_error(
    tmp_path: pathlib.Path,
) -> None:
    text = BROKEN.replace("target: checkout-deploy", "target: checkout")

    result = _validate(_write(tmp_path, text))

    assert "percentages cannot exceed 100%" in result.stderr
    assert "target 'checkout' has no blastRadius" not in result.stderr
    assert "spec.steps[0].target" not in result.stderr


def test_problems_after_a_pruned_step_keep_the_line_and_index_as_written(
    tmp_path: pathlib.Path,
) -> None:
    text = BROKEN.replace(
        '    - name: hold\n      wait: "{{ soakTime }}"\n',
        "    - name: hold\n      wait: 5 secs\n",
    )
    # the `hold` step is pruned whole (its only field fails); move it to the front
    hold = "    - name: hold\n      wait: 5 secs\n"
    text = text.replace(hold, "").replace("  steps:\n", "  steps:\n" + hold)

    result = _validate(_write(tmp_path, text))

    assert (
        f"{tmp_path / 'scenario.yaml'}:43:13: spec.steps[0].wait: '5 secs' is not a duration"
        in (result.stderr)
    )
    assert ":56:15: spec.steps[3].action: unknown action 'kubernetes.deployment.scael'" in (
        result.stderr
    )
    assert ":46:15: spec.steps[1].target: unknown target 'checkout-deploy'" in result.stderr


def test_a_scenario_without_steps_says_which_checks_wait_for_the_errors_above(
    tmp_path: pathlib.Path,
) -> None:
    start = BROKEN.index("  steps:\n")
    stop = BROKEN.index("  objectives:\n")
    path = _write(tmp_path, BROKEN[:start] + BROKEN[stop:])

    result = _validate(path)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"{path}:1: 2 more checks need the errors above fixed first: references, lint"
    )
    assert any("spec.steps: missing required field 'steps'" in line for line in lines)
    assert any("percentages cannot exceed 100%" in line for line in lines)


def test_an_unknown_kind_blocks_schema_references_and_lint_and_json_says_so(
    tmp_path: pathlib.Path,
) -> None:
    path = _write(tmp_path, BROKEN.replace("kind: Scenario", "kind: Scenaro"))

    text = _validate(path)
    shown = _validate(path, output="json")

    assert text.stderr.strip().splitlines()[-1] == (
        f"{path}:1: 3 more checks need the errors above fixed first: schema, references, lint"
    )
    document = json.loads(shown.stdout)
    assert document["valid"] is False
    assert document["blocked"] == [
        {"file": str(path), "line": 1, "checks": ["schema", "references", "lint"]}
    ]
    assert [problem["field"] for problem in document["problems"]] == ["kind"]


def test_a_scenario_with_only_a_reference_error_is_linted_in_the_same_run(
    tmp_path: pathlib.Path,
) -> None:
    text = BROKEN
    for mistake, fix in FIXES[:4] + FIXES[5:7] + FIXES[8:]:
        text = text.replace(mistake, fix)

    result = _validate(_write(tmp_path, text))

    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "unknown target 'checkout-deploy'" in lines[0]
    assert "unknown action 'kubernetes.deployment.scael'" in lines[1]
