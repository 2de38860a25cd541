"""Disruption budgets: the pure computation of a PodDisruptionBudget's status.

`currentHealthy` counts matching Ready pods; `desiredHealthy` comes from minAvailable or from
expectedPods - maxUnavailable (percentages round up, as upstream); `disruptionsAllowed` is never
negative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox.kubernetes import selectors


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """Ready condition True and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def matching_pods(
    pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Pods of the PDB's namespace selected by its selector (an empty selector selects none)."""
    spec = pdb.get("spec") or {}
    if not spec.get("selector"):
        return []
    selector = selectors.from_selector_object(spec["selector"])
    namespace = (pdb.get("metadata") or {}).get("namespace")
    return [
        pod
        for pod in pods
        if (pod.get("metadata") or {}).get("namespace") == namespace
        and selector.matches((pod.get("metadata") or {}).get("labels") or {})
    ]


def compute_status(
    pdb: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    controller_scale: Callable[[Mapping[str, Any]], int | None],
) -> dict[str, Any]:
    """The PDB status for `pods` (all pods of its namespace, or more).

    `controller_scale(ownerRef)` returns the desired replicas of a pod's controller, or None when
    unknown (the pod then counts as one expected pod).
    """
    spec = pdb.get("spec") or {}
    selected = matching_pods(pdb, pods)
    healthy = sum(1 for pod in selected if is_pod_ready(pod))
    expected = 0
    seen: set[str] = set()
    for pod in selected:
        ref = controller_of(pod)
        if ref is None:
            expected += 1
            continue
        uid = str(ref.get("uid"))
        if uid in seen:
            continue
        seen.add(uid)
        scale = controller_scale(ref)
        expected += (
            scale
            if scale is not None
            else sum(1 for p in selected if (controller_of(p) or {}).get("uid") == uid)
        )
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        desired = expected
    return {
        "observedGeneration": (pdb.get("metadata") or {}).get("generation", 1),
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "disruptionsAllowed": max(0, healthy - desired),
        "expectedPods": expected,
    }
