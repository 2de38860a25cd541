"""Lint: semantic rules beyond the schema, each problem placed at a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.providers import builtin
from scenarios import errors, library, linting, loading
from tests.scenarios import factories


def _lint(tmp_path: Path, *texts: str) -> list[errors.Problem]:
    paths = [
        factories.write(tmp_path, f"doc{index}.yaml", text) for index, text in enumerate(texts)
    ]
    result = loading.load_documents(paths)
    assert result.ok, result.problems
    return linting.lint(result.documents, catalog=factories.fake_catalog())


def _messages(problems: list[errors.Problem]) -> str:
    return "\n".join(str(problem) for problem in problems)


def test_the_reference_scenario_lints_clean(tmp_path: Path) -> None:
    assert _lint(tmp_path, factories.SCENARIO, factories.ENVIRONMENT, factories.DRILL) == []


def test_unknown_action_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "kubernetes.nodes.drain", "kubernetes.nodes.drian")
    problems = _lint(tmp_path, text)
    assert len(problems) == 1
    line = factories.line_of(text, "kubernetes.nodes.drian")
    assert problems[0].severity == "error"
    assert str(problems[0]) == (
        f"{tmp_path / 'doc0.yaml'}:{line}:15: spec.steps[0].action: unknown action"
        " 'kubernetes.nodes.drian' (did you mean 'kubernetes.nodes.drain'?)"
    )


def test_unknown_actions_are_errors_in_the_bundled_library_too() -> None:
    result = loading.load_documents(library.bundled_paths())
    empty = factories.fake_catalog().__class__(actions={}, probes={})
    strict = linting.lint(result.documents, catalog=empty)
    assert strict
    assert {problem.severity for problem in strict} == {"error"}


def test_the_bundled_library_lints_clean_against_the_real_registry() -> None:
    result = loading.load_documents(library.bundled_paths())
    catalog = builtin.registry_with_builtins().catalog()
    assert linting.lint(result.documents, catalog=catalog) == []


def test_action_parameters_are_checked_against_the_catalog_model(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "        timeout: 2m", "        timeout: -2m\n        force: true"
    )
    problems = _lint(tmp_path, text)
    assert len(problems) == 2
    timeout, force = sorted(problems, key=lambda p: p.line)
    assert f":{factories.line_of(text, 'timeout: -2m')}:18: spec.steps[0].with.timeout:" in str(
        timeout
    )
    assert "durations must be positive" in str(timeout)
    assert (
        f":{factories.line_of(text, 'force: true')}:9: spec.steps[0].with.force: unknown field"
        in str(force)
    )


def test_probe_parameters_are_checked_and_unknown_probe_types_named(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "      type: http\n", "      type: htp\n")
    problems = _lint(tmp_path, text)
    assert "spec.steadyState[0].type: unknown probe type 'htp' (did you mean 'http'?)" in _messages(
        problems
    )
    text = factories.replace(factories.SCENARIO, "url: http://127.0.0.1/healthz", "url: not a url")
    problems = _lint(tmp_path, text)
    assert (
        f":{factories.line_of(text, 'url: not a url')}:14: spec.steadyState[0].with.url:"
        in _messages(problems)
    )


def test_placeholders_for_parameters_without_defaults_are_not_linted(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "url: http://127.0.0.1/healthz", 'url: "{{ healthUrl }}"'
    )
    text = factories.replace(
        text, "  targets:\n", "    healthUrl:\n      type: string\n  targets:\n"
    )
    assert _lint(tmp_path, text) == []


def test_destructive_action_needs_a_blast_radius(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, '      blastRadius:\n        max: "{{ maxNodes }}"\n', ""
    )
    problems = _lint(tmp_path, text)
    assert len(problems) == 1
    line = factories.line_of(text, "target: zone-nodes")
    assert (
        f":{line}:15: spec.steps[0].target: action 'kubernetes.nodes.drain' is destructive"
        in str(problems[0])
    )
    assert "blastRadius" in problems[0].hint


def test_action_on_a_target_of_the_wrong_kind_is_an_error(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "kubernetes.nodes.drain", "kubernetes.deployment.scale"
    )
    text = factories.replace(text, "        timeout: 2m", "        replicas: 0")
    problems = _lint(tmp_path, text)
    assert "cannot act on target 'zone-nodes' of kind 'node'" in _messages(problems)


IRREVERSIBLE = factories.replace(
    factories.SCENARIO,
    "      with:\n        timeout: 2m\n",
    "",
).replace("kubernetes.nodes.drain", "test.nodes.replace")


def test_irreversible_action_with_automatic_rollback_is_an_error(tmp_path: Path) -> None:
    problems = _lint(tmp_path, IRREVERSIBLE)
    assert len(problems) == 1
    line = factories.line_of(IRREVERSIBLE, "test.nodes.replace")
    assert f":{line}:15: spec.steps[0].action: action 'test.nodes.replace' cannot be undone" in str(
        problems[0]
    )


def test_rollback_none_without_compensation_or_reason_is_an_error(tmp_path: Path) -> None:
    text = factories.replace(
        IRREVERSIBLE,
        "      target: zone-nodes\n",
        "      target: zone-nodes\n      rollback: none\n",
    )
    problems = _lint(tmp_path, text)
    assert len(problems) == 1
    line = factories.line_of(text, "rollback: none")
    assert (
        f":{line}:17: spec.steps[0].rollback: step 'drain' turns off rollback but nothing undoes it"
        in str(problems[0])
    )


def test_rollback_none_is_accepted_with_a_reason(tmp_path: Path) -> None:
    text = factories.replace(
        IRREVERSIBLE,
        "      target: zone-nodes\n",
        "      target: zone-nodes\n      rollback: none\n"
        "      irreversible: the deployment recreates them\n",
    )
    assert _lint(tmp_path, text) == []


def test_rollback_none_is_accepted_with_a_compensating_rollback_step(tmp_path: Path) -> None:
    text = factories.replace(
        IRREVERSIBLE,
        "      target: zone-nodes\n",
        "      target: zone-nodes\n      rollback: none\n",
    )
    text = factories.replace(
        text,
        "  objectives:\n",
        "  rollback:\n    - name: uncordon\n      action: kubernetes.nodes.cordon\n"
        "      target: zone-nodes\n  objectives:\n",
    )
    assert _lint(tmp_path, text) == []


def test_rto_is_required_unless_the_failure_mode_is_custom(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "  objectives:\n    rto: 15m\n", "")
    problems = _lint(tmp_path, text)
    assert (
        "spec.objectives.rto: failure mode 'availability-zone' needs a recovery time objective"
        in _messages(problems)
    )
    custom = factories.replace(text, "failureMode: availability-zone", "failureMode: custom")
    assert _lint(tmp_path, custom) == []


def test_protected_environment_requires_approvals(tmp_path: Path) -> None:
    text = factories.replace(
        factories.ENVIRONMENT, "  timeScale: 0.02\n", "  timeScale: 0.02\n  protected: true\n"
    )
    problems = _lint(tmp_path, text)
    assert len(problems) == 1
    assert (
        "spec.approvals.required: environment 'sandbox' is protected but requires no approvals"
        in str(problems[0])
    )


def test_rollback_none_on_a_read_only_action_is_a_warning(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "  targets:\n",
        "  targets:\n    alice:\n      provider: people\n      kind: person\n"
        "      selector:\n        refs: [user:default/alice]\n",
    )
    text = factories.replace(
        text,
        "    - name: soak\n",
        "    - name: who\n      action: people.analyse-absence\n      target: alice\n"
        "      rollback: none\n    - name: soak\n",
    )
    problems = _lint(tmp_path, text)
    assert [problem.severity for problem in problems] == ["warning"]
    assert "'rollback: none' has no effect" in problems[0].message


def test_drill_parameters_must_be_declared_and_typed(tmp_path: Path) -> None:
    drill = factories.replace(
        factories.DRILL, "    zone: us-east-1b\n", "    zones: us-east-1b\n    maxNodes: many\n"
    )
    problems = _lint(tmp_path, factories.SCENARIO, factories.ENVIRONMENT, drill)
    text = _messages(problems)
    assert (
        f"doc2.yaml:{factories.line_of(drill, 'zones:')}:5: spec.parameters.zones:"
        " scenario 'zone-drain' has no parameter 'zones' (did you mean 'zone'?)" in text
    )
    assert (
        f"doc2.yaml:{factories.line_of(drill, 'maxNodes:')}:15: spec.parameters.maxNodes:"
        " invalid value for 'maxNodes'" in text
    )


def test_drill_environment_must_be_allowed_by_the_scenario(tmp_path: Path) -> None:
    env = factories.replace(factories.ENVIRONMENT, "name: sandbox", "name: staging")
    drill = factories.replace(factories.DRILL, "environment: sandbox", "environment: staging")
    problems = _lint(tmp_path, factories.SCENARIO, env, drill)
    assert (
        "spec.environment: scenario 'zone-drain' may run only in sandbox, not 'staging'"
        in _messages(problems)
    )


def test_abort_when_probe_must_exist(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "    maxDuration: 30m\n",
        "    maxDuration: 30m\n    abortWhen:\n      - probe: checkout-health\n",
    )
    path = factories.write(tmp_path, "abort.yaml", text)
    result = loading.load_documents([path])
    assert len(result.problems) == 1
    line = factories.line_of(text, "probe: checkout-health")
    assert (
        f"abort.yaml:{line}:16: spec.guardrails.abortWhen[0].probe: unknown probe"
        " 'checkout-health' (did you mean 'checkout-healthy'?)" in str(result.problems[0])
    )


@pytest.mark.parametrize("name", ["drain", "check"])
def test_duplicate_step_names_are_errors(tmp_path: Path, name: str) -> None:
    text = factories.replace(factories.SCENARIO, "    - name: soak\n", f"    - name: {name}\n")
    path = factories.write(tmp_path, "dup.yaml", text)
    result = loading.load_documents([path])
    assert f"step name '{name}' is used twice" in _messages(list(result.problems))
