"""Registration: the plugin registers everything, and the bundled scenarios lint against it."""

from __future__ import annotations

import pytest

from orchestrator import registry
from orchestrator.providers import builtin
from orchestrator.providers.kubernetes import plugin
from scenarios import library, linting, loading


def test_register_adds_the_connector_actions_probes_resolver_and_sweeper() -> None:
    found = registry.Registry()

    plugin.register(found)

    assert "kubernetes" in found.connectors()
    assert {cls.name for cls in found.actions()} == {
        "kubernetes.nodes.cordon",
        "kubernetes.nodes.drain",
        "kubernetes.nodes.taint",
        "kubernetes.pods.delete",
        "kubernetes.deployment.scale",
        "kubernetes.network.deny-egress",
        "kubernetes.network.partition",
        "kubernetes.rbac.revoke-subject",
    }
    assert {cls.name for cls in found.probes()} == {
        "kubernetes.deployment-available",
        "kubernetes.pods-ready",
    }
    for kind in ("node", "pod", "deployment", "statefulset", "namespace", "subject"):
        assert found.resolver(provider="kubernetes", kind=kind)
    assert [s.provider for s in found.sweepers()] == ["kubernetes"]


@pytest.mark.parametrize("name", library.names())
def test_bundled_scenarios_call_kubernetes_actions_and_probes_with_valid_params(name: str) -> None:
    result = loading.load_documents([library.find(name)])

    problems = linting.lint(result.documents, catalog=builtin.registry_with_builtins().catalog())

    assert [str(p) for p in problems if p.severity == "error"] == []
