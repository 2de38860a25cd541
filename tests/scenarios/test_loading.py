"""Loading documents: schema mistakes are reported at file:line with the field as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import errors, loading, models, quantities
from tests.scenarios import factories


def _problems(tmp_path: Path, text: str, *, name: str = "doc.yaml") -> list[errors.Problem]:
    path = factories.write(tmp_path, name, text)
    result = loading.load_documents([path])
    assert not result.ok
    return list(result.problems)


def _one(tmp_path: Path, text: str) -> str:
    problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    return str(problems[0])


def test_valid_scenario_loads_with_defaults_applied(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "ok.yaml", factories.SCENARIO)
    loaded = loading.load_scenario(path)
    spec = loaded.model.spec
    assert loaded.name == "zone-drain"
    assert loaded.source.line == 1
    assert spec.targets["zone-nodes"].selector.labels == {
        "topology.kubernetes.io/zone": "us-east-1a"
    }
    assert spec.targets["zone-nodes"].blast_radius == models.BlastRadius(max=2)
    assert spec.steps[1].wait == quantities.Duration(300)
    assert spec.steady_state[0].interval == quantities.Duration(5)


def test_unknown_field_is_named_with_a_close_match(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "      target: zone-nodes", "      targt: zone-nodes"
    )
    message = _one(tmp_path, text)
    line = factories.line_of(text, "targt:")
    assert f"doc.yaml:{line}:7: spec.steps[0].targt: unknown field 'targt'" in message
    assert "did you mean 'target'?" in message


def test_camel_case_alias_is_suggested_for_snake_case_field(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "    maxDuration: 30m", "    max_duration: 30m")
    problems = _problems(tmp_path, text)
    joined = "\n".join(map(str, problems))
    assert f"doc.yaml:{factories.line_of(text, 'max_duration')}:5" in joined
    assert "unknown field 'max_duration'" in joined
    assert "did you mean 'maxDuration'?" in joined


def test_wrong_type_names_expected_and_found(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "environments: [sandbox]", "environments: sandbox")
    message = _one(tmp_path, text)
    line = factories.line_of(text, "environments: sandbox")
    assert f"doc.yaml:{line}:19: spec.guardrails.environments: expected a list" in message
    assert "got a string ('sandbox')" in message


def test_missing_required_field_points_at_its_parent(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "    maxDuration: 30m\n", "")
    message = _one(tmp_path, text)
    line = factories.line_of(text, "guardrails:")
    assert f"doc.yaml:{line}:3: spec.guardrails.maxDuration: missing required field" in message


def test_negative_and_zero_durations_are_errors(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "maxDuration: 30m", "maxDuration: -30m")
    text = factories.replace(text, "rto: 15m", "rto: 0s")
    problems = _problems(tmp_path, text)
    assert len(problems) == 2
    duration, rto = problems
    assert f":{factories.line_of(text, 'maxDuration')}:18: spec.guardrails.maxDuration:" in str(
        duration
    )
    assert "durations must be positive" in str(duration)
    assert f":{factories.line_of(text, 'rto: 0s')}:10: spec.objectives.rto:" in str(rto)


def test_percentage_over_100_is_an_error(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, 'max: "{{ maxNodes }}"', 'max: "150%"')
    message = _one(tmp_path, text)
    line = factories.line_of(text, 'max: "150%"')
    assert f"doc.yaml:{line}:14: spec.targets.zone-nodes.blastRadius.max:" in message
    assert "cannot exceed 100%" in message


def test_step_naming_an_undefined_target_is_an_error_with_hint(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "target: zone-nodes", "target: zone-node")
    message = _one(tmp_path, text)
    line = factories.line_of(text, "target: zone-node")
    assert f"doc.yaml:{line}:15: spec.steps[0].target: unknown target 'zone-node'" in message
    assert "did you mean 'zone-nodes'?" in message


def test_step_naming_an_undefined_probe_is_an_error(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "probe: checkout-healthy", "probe: checkout-ok")
    message = _one(tmp_path, text)
    line = factories.line_of(text, "probe: checkout-ok")
    assert f"doc.yaml:{line}:14: spec.steps[2].probe: unknown probe 'checkout-ok'" in message


def test_step_with_two_kinds_is_an_error_at_the_step(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        '      wait: "{{ soak }}"',
        "      wait: 5m\n      probe: checkout-healthy",
    )
    message = _one(tmp_path, text)
    line = factories.line_of(text, "- name: soak")
    assert f"doc.yaml:{line}:7: spec.steps[1]:" in message
    assert "exactly one of action, probe, wait, manual (found probe, wait)" in message


def test_unknown_api_version_and_kind_are_reported(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "stormdrill.dev/v1", "stormdrill.dev/v2")
    text = factories.replace(text, "kind: Scenario", "kind: Senario")
    problems = [str(p) for p in _problems(tmp_path, text)]
    assert problems[0].startswith(f"{tmp_path / 'doc.yaml'}:1:13: apiVersion: unknown apiVersion")
    assert "stormdrill.dev/v1" in problems[0]
    assert "doc.yaml:2:7: kind: unknown kind 'Senario' (did you mean 'Scenario'?)" in problems[1]


def test_invalid_metadata_name_is_explained(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "name: zone-drain", "name: Zone_Drain")
    message = _one(tmp_path, text)
    assert "doc.yaml:4:9: metadata.name: 'Zone_Drain' is not a valid name" in message


def test_all_problems_of_a_document_are_collected(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO, "failureMode: availability-zone", "failureMode: zone"
    )
    text = factories.replace(text, "      kind: node", "      kind: nodes")
    text = factories.replace(
        text, "environments: [sandbox]", "environments: [sandbox]\n    maxTier: 9"
    )
    problems = [str(p) for p in _problems(tmp_path, text)]
    assert len(problems) == 3
    assert any("spec.failureMode" in p and "did you mean" not in p for p in problems)
    assert any("spec.targets.zone-nodes" in p and "did you mean 'node'?" in p for p in problems)
    assert any(
        "spec.guardrails.maxTier: must be less than or equal to 4, got 9" in p for p in problems
    )


def test_multi_document_file_loads_each_document_with_its_line(tmp_path: Path) -> None:
    text = factories.ENVIRONMENT + "---\n" + factories.DRILL + "---\n" + factories.SCENARIO
    path = factories.write(tmp_path, "all.yaml", text)
    result = loading.load_documents([path])
    assert result.ok, result.problems
    assert [doc.kind for doc in result.documents] == [
        models.Kind.ENVIRONMENT,
        models.Kind.DRILL,
        models.Kind.SCENARIO,
    ]
    assert [doc.source.index for doc in result.documents] == [0, 1, 2]
    assert result.documents[1].source.line == factories.line_of(text, "kind: Drill") - 1


def test_bad_document_in_a_multi_document_file_does_not_hide_the_others(tmp_path: Path) -> None:
    bad = factories.replace(factories.DRILL, "scenario: zone-drain", "scenario: 3")
    text = factories.ENVIRONMENT + "---\n" + bad
    path = factories.write(tmp_path, "mixed.yaml", text)
    result = loading.load_documents([path])
    assert [doc.name for doc in result.documents] == ["sandbox"]
    assert len(result.problems) == 1
    line = factories.line_of(text, "scenario: 3")
    assert f"mixed.yaml:{line}:13: spec.scenario: expected a string, got an integer (3)" in str(
        result.problems[0]
    )


def test_folder_loading_is_recursive_and_sorted(tmp_path: Path) -> None:
    factories.write(tmp_path, "b/scenario.yml", factories.SCENARIO)
    factories.write(tmp_path, "a/env.yaml", factories.ENVIRONMENT)
    factories.write(tmp_path, "notes.txt", "not yaml")
    result = loading.load_documents([tmp_path])
    assert result.ok
    assert [doc.name for doc in result.documents] == ["sandbox", "zone-drain"]


def test_duplicate_document_names_are_errors(tmp_path: Path) -> None:
    factories.write(tmp_path, "one.yaml", factories.SCENARIO)
    factories.write(tmp_path, "two.yaml", factories.SCENARIO)
    result = loading.load_documents([tmp_path])
    assert len(result.problems) == 1
    assert "two.yaml:4:9: metadata.name: Scenario 'zone-drain' is defined twice" in str(
        result.problems[0]
    )


def test_relative_paths_resolve_against_the_document_folder(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "envs/sandbox.yaml", factories.ENVIRONMENT)
    env = loading.load_environment(path)
    assert env.model.spec.kubernetes is not None
    assert env.model.spec.kubernetes.kubeconfig == (tmp_path / "envs" / "kubeconfig.yaml").resolve()


def test_load_scenario_raises_scenario_invalid_with_the_problems(tmp_path: Path) -> None:
    path = factories.write(tmp_path, "env.yaml", factories.ENVIRONMENT)
    with pytest.raises(errors.ScenarioInvalid, match="expected exactly one Scenario document"):
        loading.load_scenario(path)


def test_missing_path_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    result = loading.load_documents([tmp_path / "nope.yaml"])
    assert "nope.yaml:1:1: no such file or folder" in str(result.problems[0])


def test_drill_reference_resolves_by_path_or_by_name(tmp_path: Path) -> None:
    scenario = factories.write(tmp_path, "scenarios/zone.yaml", factories.SCENARIO)
    found = loading.resolve_reference(
        "../scenarios/zone.yaml", kind=models.Kind.SCENARIO, relative_to=tmp_path / "drills"
    )
    assert found == scenario.resolve()
    by_name = loading.resolve_reference(
        "zone-drain",
        kind=models.Kind.SCENARIO,
        relative_to=tmp_path,
        search=[tmp_path / "scenarios"],
    )
    assert by_name.resolve() == scenario.resolve()
    bundled = loading.resolve_reference(
        "dependency-outage", kind=models.Kind.SCENARIO, relative_to=tmp_path
    )
    assert bundled.name == "dependency-outage.yaml"
    with pytest.raises(errors.ScenarioInvalid, match="did you mean 'zone-drain'"):
        loading.resolve_reference(
            "zone-drian",
            kind=models.Kind.SCENARIO,
            relative_to=tmp_path,
            search=[tmp_path / "scenarios"],
        )


def test_a_bad_list_item_is_reported_once_without_a_spurious_length_error(
    tmp_path: Path,
) -> None:
    text = factories.replace(
        factories.SCENARIO, "environments: [sandbox]", "environments: [Sandbox]"
    )
    message = _one(tmp_path, text)
    line = factories.line_of(text, "environments: [Sandbox]")
    assert (
        f"doc.yaml:{line}:20: spec.guardrails.environments[0]: 'Sandbox' is not a valid name"
        in (message)
    )


def test_unquoted_clock_times_stay_times_of_day(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "    maxDuration: 30m\n",
        "    maxDuration: 30m\n    windows:\n"
        "      - {days: [tue, wed], start: 09:00, end: 17:00}\n",
    )
    path = factories.write(tmp_path, "window.yaml", text)
    window = loading.load_scenario(path).model.spec.guardrails.windows[0]
    assert (window.start.hour, window.end.hour) == (9, 17)


def test_a_game_day_next_to_scenarios_is_skipped_with_a_warning_not_an_error(
    tmp_path: Path,
) -> None:
    game_day = (
        "apiVersion: stormdrill.dev/v1\nkind: GameDay\nmetadata:\n  name: checkout-gameday\n"
        "spec: {}\n"
    )
    (tmp_path / "day.gameday.yaml").write_text(game_day, encoding="utf-8")
    (tmp_path / "doc.yaml").write_text(factories.SCENARIO, encoding="utf-8")

    result = loading.load_documents([tmp_path])

    assert result.ok
    assert [doc.kind for doc in result.documents] == [models.Kind.SCENARIO]
    [problem] = result.problems
    assert problem.severity == "warning"
    assert str(problem).startswith(f"{tmp_path / 'day.gameday.yaml'}:2:7: kind: a GameDay")
    assert "stormdrill gamedays create FILE" in problem.hint


def test_a_game_day_of_another_api_version_is_still_an_unknown_kind_error(
    tmp_path: Path,
) -> None:
    text = "apiVersion: example.com/v9\nkind: GameDay\nmetadata:\n  name: x\nspec: {}\n"
    problems = _problems(tmp_path, text)
    assert any(p.severity == "error" and p.field == "apiVersion" for p in problems)
