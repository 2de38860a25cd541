"""Tables: server-side printing (`meta.k8s.io/v1 Table`) so `kubectl get` shows familiar columns.

Pure functions from stored objects to a Table; unknown types get NAME and AGE.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox.kubernetes import resources

Cells = list[object]


def _age(obj: Mapping[str, Any]) -> str:
    raw = (obj.get("metadata") or {}).get("creationTimestamp")
    if not raw:
        return "<unknown>"
    created = datetime.datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _node(obj: Mapping[str, Any]) -> Cells:
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )
    status = "Ready" if ready else "NotReady"
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    version = ((obj.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [_name(obj), status, "<none>", _age(obj), version]


def _pod(obj: Mapping[str, Any]) -> Cells:
    status = obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    phase = (
        "Terminating"
        if (obj.get("metadata") or {}).get("deletionTimestamp")
        else status.get("phase", "")
    )
    return [
        _name(obj),
        f"{ready}/{total}",
        phase,
        restarts,
        _age(obj),
        status.get("podIP", "<none>"),
        (obj.get("spec") or {}).get("nodeName", "<none>"),
    ]


def _deployment(obj: Mapping[str, Any]) -> Cells:
    status = obj.get("status") or {}
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{wanted}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj),
    ]


def _pdb(obj: Mapping[str, Any]) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _name(obj),
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        status.get("disruptionsAllowed", 0),
        _age(obj),
    ]


def _column(name: str, kind: str = "string", priority: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": "",
        "priority": priority,
    }


_LAYOUTS: dict[
    tuple[str, str], tuple[list[dict[str, object]], Callable[[Mapping[str, Any]], Cells]]
] = {
    ("", "nodes"): (
        [_column("Name"), _column("Status"), _column("Roles"), _column("Age"), _column("Version")],
        _node,
    ),
    ("", "pods"): (
        [
            _column("Name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
        ],
        _pod,
    ),
    ("apps", "deployments"): (
        [
            _column("Name"),
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
        ],
        _deployment,
    ),
    ("policy", "poddisruptionbudgets"): (
        [
            _column("Name"),
            _column("Min Available"),
            _column("Max Unavailable"),
            _column("Allowed Disruptions", "integer"),
            _column("Age"),
        ],
        _pdb,
    ),
}


def table(
    resource: resources.ResourceType,
    items: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    continue_token: str = "",
) -> dict[str, object]:
    """A `Table` of `items` (each row carries the full object)."""
    columns, cells = _LAYOUTS.get(
        (resource.group, resource.plural),
        ([_column("Name"), _column("Age")], lambda o: [_name(o), _age(o)]),
    )
    meta: dict[str, object] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": [{"cells": cells(item), "object": item} for item in items],
    }
