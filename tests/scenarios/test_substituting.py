"""Parameters and `{{ name }}` substitution: typed, validated, and never evaluating code."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import errors, loading, models, parameters, quantities, substituting
from tests.scenarios import factories


def _scenario(tmp_path: Path, text: str = factories.SCENARIO) -> tuple[Path, str]:
    return factories.write(tmp_path, "scenario.yaml", text), text


def _load_problem(tmp_path: Path, text: str) -> str:
    path, _ = _scenario(tmp_path, text)
    result = loading.load_documents([path])
    assert result.documents == ()
    assert len(result.problems) == 1, result.problems
    return str(result.problems[0])


def test_whole_value_template_keeps_the_parameter_type(tmp_path: Path) -> None:
    path, _ = _scenario(tmp_path)
    scenario = substituting.render(loading.load_scenario(path), {"maxNodes": 3})
    blast = scenario.spec.targets["zone-nodes"].blast_radius
    assert blast is not None
    assert blast.max == 3
    assert isinstance(blast.max, int)
    assert scenario.spec.steps[1].wait == quantities.Duration(300)


def test_embedded_template_is_formatted_as_text(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "description: Drain one zone's nodes.",
        "description: Drain {{ maxNodes }} nodes in {{ zone }} for {{ soak }}.",
    )
    path, _ = _scenario(tmp_path, text)
    scenario = substituting.render(loading.load_scenario(path), {"zone": "us-east-1c"})
    assert scenario.spec.description == "Drain 2 nodes in us-east-1c for 5m."


def test_command_line_strings_are_coerced_to_declared_types(tmp_path: Path) -> None:
    path, _ = _scenario(tmp_path)
    loaded = loading.load_scenario(path)
    bound = substituting.bind(loaded, {"maxNodes": "2", "soak": "90s"})
    assert bound == {
        "zone": "us-east-1a",
        "maxNodes": 2,
        "soak": quantities.Duration(90),
    }


def test_values_take_precedence_over_environment_over_defaults(tmp_path: Path) -> None:
    path, _ = _scenario(tmp_path)
    loaded = loading.load_scenario(path)
    bound = substituting.bind(
        loaded,
        {"zone": "us-east-1c"},
        environment={"zone": "us-east-1b", "soak": "1m", "unrelatedUrl": "http://x"},
    )
    assert bound["zone"] == "us-east-1c"
    assert bound["soak"] == quantities.Duration(60)
    assert "unrelatedUrl" not in bound


def test_bad_supplied_value_names_the_parameter_declaration(tmp_path: Path) -> None:
    path, text = _scenario(tmp_path)
    with pytest.raises(errors.ScenarioInvalid) as caught:
        substituting.render(loading.load_scenario(path), {"maxNodes": "two"})
    line = factories.line_of(text, "    maxNodes:")
    message = str(caught.value)
    assert f"scenario.yaml:{line}:5: spec.parameters.maxNodes:" in message
    assert "expected an integer, got a string ('two')" in message


def test_missing_parameter_without_default_is_an_error(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "        url: http://127.0.0.1/healthz",
        '        url: "{{ checkoutHealthUrl }}"',
    )
    text = factories.replace(
        text, "  targets:\n", "    checkoutHealthUrl:\n      type: string\n  targets:\n"
    )
    path, _ = _scenario(tmp_path, text)
    loaded = loading.load_scenario(path)
    with pytest.raises(errors.ScenarioInvalid) as caught:
        substituting.render(loaded, {})
    line = factories.line_of(text, "    checkoutHealthUrl:")
    message = str(caught.value)
    assert f"scenario.yaml:{line}:5: spec.parameters.checkoutHealthUrl:" in message
    assert "has no default and no value was supplied" in message
    rendered = substituting.render(
        loaded, {}, environment={"checkoutHealthUrl": "http://127.0.0.1:9/healthz"}
    )
    assert rendered.spec.steady_state[0].params["url"] == "http://127.0.0.1:9/healthz"


def test_unknown_supplied_parameter_is_an_error_with_hint(tmp_path: Path) -> None:
    path, _ = _scenario(tmp_path)
    with pytest.raises(errors.ScenarioInvalid, match="did you mean 'maxNodes'"):
        substituting.render(loading.load_scenario(path), {"maxNode": 2})


def test_enum_restricts_supplied_values(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "      default: us-east-1a\n",
        "      default: us-east-1a\n      enum: [us-east-1a, us-east-1b]\n",
    )
    path, _ = _scenario(tmp_path, text)
    with pytest.raises(errors.ScenarioInvalid, match="'eu-west-1a' is not one of"):
        substituting.render(loading.load_scenario(path), {"zone": "eu-west-1a"})


def test_unknown_parameter_in_template_names_the_line(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, '"{{ zone }}"', '"{{ zonee }}"')
    message = _load_problem(tmp_path, text)
    line = factories.line_of(text, "{{ zonee }}")
    assert f"scenario.yaml:{line}:40:" in message
    assert 'spec.targets.zone-nodes.selector.labels["topology.kubernetes.io/zone"]' in message
    assert "unknown parameter 'zonee'" in message
    assert "did you mean 'zone'?" in message


@pytest.mark.parametrize(
    "template",
    [
        "{{ zone.upper }}",
        "{{ zone|lower }}",
        "{{ 1+1 }}",
        "{{ zone.__class__ }}",
        "{% for x in y %}x{% endfor %}",
        "{# comment #}",
        "{{ zone",
    ],
)
def test_anything_but_a_plain_name_is_refused(tmp_path: Path, template: str) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "hypothesis: Checkout stays healthy.",
        f"hypothesis: 'Checkout stays healthy {template}'",
    )
    message = _load_problem(tmp_path, text)
    line = factories.line_of(text, "hypothesis:")
    assert f"scenario.yaml:{line}:15: spec.hypothesis:" in message
    assert "'{{ name }}'" in message


def test_templates_outside_spec_are_refused(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "  name: zone-drain\n",
        "  name: zone-drain\n  labels:\n    z: '{{ zone }}'\n",
    )
    message = _load_problem(tmp_path, text)
    assert f":{factories.line_of(text, 'z: ')}:8: metadata.labels.z:" in message
    assert "only inside 'spec'" in message


def test_a_substituted_value_is_validated_with_the_template_line(tmp_path: Path) -> None:
    path, text = _scenario(tmp_path)
    with pytest.raises(errors.ScenarioInvalid) as caught:
        substituting.render(loading.load_scenario(path), {"maxNodes": 0})
    line = factories.line_of(text, 'max: "{{ maxNodes }}"')
    message = str(caught.value)
    assert f"scenario.yaml:{line}:14: spec.targets.zone-nodes.blastRadius.max:" in message
    assert "at least 1" in message


def test_list_parameter_fills_a_whole_list(tmp_path: Path) -> None:
    text = factories.replace(
        factories.SCENARIO,
        "    environments: [sandbox]",
        '    environments: "{{ envs }}"',
    )
    text = factories.replace(
        text, "  targets:\n", "    envs:\n      type: list\n      default: [sandbox]\n  targets:\n"
    )
    path, _ = _scenario(tmp_path, text)
    scenario = substituting.render(loading.load_scenario(path), {"envs": "sandbox, staging"})
    assert scenario.spec.guardrails.environments == ("sandbox", "staging")


def test_parameter_default_of_wrong_type_is_reported(tmp_path: Path) -> None:
    text = factories.replace(factories.SCENARIO, "      default: 2\n", "      default: two\n")
    message = _load_problem(tmp_path, text)
    assert f":{factories.line_of(text, '    maxNodes:')}:5: spec.parameters.maxNodes:" in message
    assert "expected an integer" in message


def test_coercion_rules() -> None:
    assert parameters.coerce("yes", type_=parameters.ParamType.BOOLEAN) is True
    assert parameters.coerce("2.5", type_=parameters.ParamType.NUMBER) == 2.5
    assert parameters.coerce("50%", type_=parameters.ParamType.PERCENT) == quantities.Percent(50)
    with pytest.raises(ValueError, match="expected an integer"):
        parameters.coerce(True, type_=parameters.ParamType.INTEGER)
    with pytest.raises(ValueError, match="expected a string"):
        parameters.coerce(5, type_=parameters.ParamType.STRING)


def test_loaded_model_uses_defaults_for_preview(tmp_path: Path) -> None:
    path, _ = _scenario(tmp_path)
    loaded = loading.load_scenario(path)
    assert isinstance(loaded.model, models.Scenario)
    assert loaded.model.spec.targets["zone-nodes"].selector.labels == {
        "topology.kubernetes.io/zone": "us-east-1a"
    }
