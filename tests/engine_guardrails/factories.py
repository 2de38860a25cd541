"""Factories for guardrail tests: fresh scenarios, environments, selections and services."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator import journal, mutations, targets
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from scenarios import models

NOW = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
"""A Tuesday morning (UTC)."""

_SCENARIO: dict[str, Any] = {
    "apiVersion": "stormdrill.dev/v1",
    "kind": "Scenario",
    "metadata": {"name": "zone-drain"},
    "spec": {
        "description": "Drain one zone's nodes.",
        "failureMode": "availability-zone",
        "hypothesis": "Checkout stays healthy.",
        "targets": {
            "zone-nodes": {
                "provider": "kubernetes",
                "kind": "node",
                "selector": {"labels": {"topology.kubernetes.io/zone": "us-east-1a"}},
                "blastRadius": {"max": 2},
            },
            "checkout-pods": {
                "provider": "kubernetes",
                "kind": "pod",
                "namespace": "shop",
                "selector": {"labels": {"app": "checkout"}},
                "blastRadius": {"max": "50%"},
            },
        },
        "guardrails": {"environments": ["sandbox", "staging"], "maxDuration": "30m"},
        "steps": [{"name": "hold", "wait": "1m"}],
        "objectives": {"rto": "15m"},
    },
}

_ENVIRONMENT: dict[str, Any] = {
    "apiVersion": "stormdrill.dev/v1",
    "kind": "Environment",
    "metadata": {"name": "sandbox"},
    "spec": {"kubernetes": {"inCluster": True}},
}


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def scenario(**spec: Any) -> models.Scenario:
    """The base scenario with `spec` fields merged in (camelCase keys, nested dicts merge)."""
    return models.Scenario.model_validate(_merge(_SCENARIO, {"spec": spec}))


def guardrails(**fields: Any) -> models.Guardrails:
    return scenario(guardrails=fields).spec.guardrails


def environment(name: str = "sandbox", **spec: Any) -> models.Environment:
    """An environment named `name` with `spec` fields merged in."""
    return models.Environment.model_validate(
        _merge(_ENVIRONMENT, {"metadata": {"name": name}, "spec": spec})
    )


def node(name: str) -> mutations.TargetRef:
    return mutations.TargetRef(provider="kubernetes", kind="node", name=name)


def pod(name: str, namespace: str = "shop") -> mutations.TargetRef:
    return mutations.TargetRef(provider="kubernetes", kind="pod", name=name, namespace=namespace)


def selection(
    name: str,
    *refs: mutations.TargetRef,
    population: int = 6,
    kind: str | None = None,
) -> targets.Selection:
    return targets.Selection(
        name=name,
        provider="kubernetes",
        kind=kind or (refs[0].kind if refs else "node"),
        refs=refs,
        population=population,
    )


def service(name: str, *, tier: int, distance: int = 0) -> cmdb_impact.ImpactedService:
    ref = cmdb_models.EntityRef(cmdb_models.EntityKind.COMPONENT, "default", name)
    owner = cmdb_models.EntityRef(cmdb_models.EntityKind.GROUP, "default", "team-a")
    svc = cmdb_models.Service(
        ref=ref,
        name=name,
        kind=cmdb_models.EntityKind.COMPONENT,
        type="service",
        system=None,
        owner=owner,
        tier=tier,
        lifecycle="production",
        objectives=cmdb_models.Objectives(),
        source=cmdb_models.SourceLocation(file="catalog-info.yaml", line=1),
    )
    return cmdb_impact.ImpactedService(service=svc, distance=distance, path=(ref,))


def switch(*, engaged: bool = False, by: str = "", reason: str = "") -> journal.Killswitch:
    return journal.Killswitch(engaged=engaged, by=by, reason=reason, at=NOW if engaged else None)
