"""Factories for Kubernetes provider tests: environments, run contexts and action helpers."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import context, mutations, registry, states
from orchestrator.providers.kubernetes import connection, objects
from scenarios import models

RUN_ID = "20250101T120000Z-abcd1234"
OTHER_RUN_ID = "20250101T130000Z-ffff0000"
ORCHESTRATOR_NODE = "node-us-east-1c-2"


def make_environment(kubeconfig: pathlib.Path, *, time_scale: float = 1.0) -> models.Environment:
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "sandbox"},
            "spec": {
                "timeScale": time_scale,
                "kubernetes": {"kubeconfig": str(kubeconfig)},
                "orchestrator": {
                    "namespace": "stormdrill",
                    "podName": "stormdrill-0",
                    "nodeName": ORCHESTRATOR_NODE,
                },
            },
        }
    )


def make_context(
    kubeconfig: pathlib.Path,
    *,
    run_id: str = RUN_ID,
    expires_in: timedelta = timedelta(hours=1),
    time_scale: float = 1.0,
) -> context.RunContext:
    environment = make_environment(kubeconfig, time_scale=time_scale)
    return context.RunContext(
        run_id=states.RunId(run_id),
        environment=environment,
        connections=context.Connections(environment, {"kubernetes": connection.connect}),
        expires_at=datetime.now(UTC) + expires_in,
        time_scale=time_scale,
    )


def conn_of(ctx: context.RunContext) -> connection.KubeConnection:
    return connection.from_context(ctx)


def ref(kind: str, name: str, namespace: str | None = None) -> mutations.TargetRef:
    return mutations.TargetRef(provider="kubernetes", kind=kind, name=name, namespace=namespace)


def node(name: str) -> mutations.TargetRef:
    return ref("node", name)


def plan(
    action: registry.Action[Any],
    ctx: context.RunContext,
    refs: Sequence[mutations.TargetRef],
    raw: Mapping[str, Any] | None = None,
    *,
    step: str = "inject",
) -> list[mutations.PlannedMutation]:
    """Plan as the engine does: parse params, plan, then stamp the step name."""
    params = action.parse_params(raw or {})
    planned = action.plan(ctx, targets=refs, params=params)
    return [dataclasses.replace(m, step=step) for m in planned]


def apply_all(
    action: registry.Action[Any],
    ctx: context.RunContext,
    planned: Sequence[mutations.PlannedMutation],
) -> list[mutations.UndoToken]:
    tokens = []
    for mutation in planned:
        refined = action.apply(ctx, mutation=mutation)
        tokens.append(refined or mutation.undo)
    return tokens


def revert_all(
    action: registry.Action[Any], ctx: context.RunContext, tokens: Sequence[mutations.UndoToken]
) -> None:
    for token in reversed(tokens):
        action.revert(ctx, undo=token)


def states_of(ctx: context.RunContext, refs: Sequence[mutations.TargetRef]) -> dict[str, Any]:
    conn = conn_of(ctx)
    return {r.key: objects.object_state(conn, r) for r in refs}


def annotations_on(ctx: context.RunContext, target: mutations.TargetRef) -> dict[str, str]:
    found = objects.read(conn_of(ctx), target)
    assert found is not None
    return dict((found.get("metadata") or {}).get("annotations") or {})
