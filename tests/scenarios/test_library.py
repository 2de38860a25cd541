"""The bundled library and the examples: valid, lint-clean, and consistent with the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import errors, library, linting, loading, models, substituting
from tests.scenarios import factories

EXAMPLES = Path(__file__).resolve().parents[2] / "drills" / "examples"
EXPECTED = {
    "az-failure",
    "az-failure-aws",
    "az-failure-kubernetes",
    "az-power-loss-kubernetes",
    "dependency-outage",
    "key-person-loss",
    "third-party-outage",
}


def test_the_library_holds_the_expected_scenarios() -> None:
    assert set(library.names()) == EXPECTED
    for path in library.bundled_paths():
        assert library.is_bundled(path)
        assert loading.load_scenario(path).name == path.stem


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_scenario_validates_and_lints_clean(name: str) -> None:
    result = loading.load_documents([library.find(name)])
    assert result.problems == ()
    problems = linting.lint(result.documents, catalog=factories.fake_catalog())
    assert problems == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_scenario_renders_with_the_sandbox_environment(name: str) -> None:
    scenario = loading.load_scenario(library.find(name))
    sandbox = loading.load_environment(EXAMPLES / "sandbox.environment.yaml")
    rendered = substituting.render(scenario, {}, environment=sandbox.model.spec.parameters)
    assert "sandbox" in rendered.spec.guardrails.environments
    for probe in rendered.spec.steady_state:
        if probe.type == "http":
            assert str(probe.params["url"]).startswith("http://127.0.0.1:")


def test_examples_load_and_lint_clean_with_the_library() -> None:
    result = loading.load_documents([EXAMPLES, *library.bundled_paths()])
    assert result.problems == ()
    kinds = {doc.name: doc.kind for doc in result.documents}
    assert kinds["production"] is models.Kind.ENVIRONMENT
    assert kinds["weekly-gameday"] is models.Kind.DRILL
    problems = linting.lint(result.documents, catalog=factories.fake_catalog())
    assert problems == []


def test_production_example_is_protected_with_approvals() -> None:
    production = loading.load_environment(EXAMPLES / "production.environment.yaml")
    assert production.model.spec.protected
    assert production.model.spec.approvals.required >= 1


def test_unknown_bundled_name_suggests_a_close_match() -> None:
    with pytest.raises(errors.ScenarioInvalid, match="did you mean 'az-failure-aws'"):
        library.find("az-failure-awz")
