"""Sweeping: find this provider's markers and heal the faults of orphaned runs.

Looks at nodes, deployments, statefulsets, RoleBindings and ClusterRoleBindings carrying the
`stormdrill.dev/run-id` annotation, and NetworkPolicies labelled with it. A marker whose run
`is_orphan(run_id, expires_at)` is healed from its `stormdrill.dev/undo` entries alone (the
journal is not consulted); live runs' markers are reported and left alone.

Invariant: one object failing to heal does not stop the sweep; it is reported unhealed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from orchestrator import errors, registry
from orchestrator.providers.kubernetes import connection, healing, markers, objects

log = logging.getLogger(__name__)


def _marked(
    conn: connection.KubeConnection,
) -> list[tuple[str, connection.KubeObject]]:
    sources: list[tuple[str, str, Any, dict[str, str]]] = [
        ("node", "nodes", conn.core.list_node, {}),
        ("deployment", "deployments", conn.apps.list_deployment_for_all_namespaces, {}),
        ("statefulset", "statefulsets", conn.apps.list_stateful_set_for_all_namespaces, {}),
        ("rolebinding", "rolebindings", conn.rbac.list_role_binding_for_all_namespaces, {}),
        ("clusterrolebinding", "clusterrolebindings", conn.rbac.list_cluster_role_binding, {}),
        (
            "networkpolicy",
            "networkpolicies",
            conn.networking.list_network_policy_for_all_namespaces,
            {"label_selector": markers.RUN_ID},
        ),
    ]
    found = []
    for kind, what, method, query in sources:
        for obj in objects.items(conn.call(what, method, **query)):
            if markers.RUN_ID in markers.annotations_of(obj):
                found.append((kind, obj))
    return found


class KubernetesSweeper(registry.Sweeper):
    """Heals Kubernetes faults of dead or expired runs from their annotations."""

    provider: ClassVar[str] = connection.PROVIDER

    def sweep(
        self,
        ctx: registry.ProviderContext,
        *,
        is_orphan: Callable[[str, datetime], bool],
        dry_run: bool,
    ) -> list[registry.SweepFinding]:
        conn = connection.from_context(ctx)
        now = datetime.now(UTC)
        findings = []
        for kind, obj in _marked(conn):
            marker = markers.read(obj)
            if marker is None:
                continue
            ref = objects.ref_of(obj, kind=kind)
            expired = marker.expired(now)
            entries = ", ".join(marker.entries) or "no undo entries"
            if not is_orphan(marker.run_id, marker.expires_at):
                findings.append(
                    registry.SweepFinding(
                        target=ref,
                        run_id=marker.run_id,
                        expired=expired,
                        healed=False,
                        message=f"{ref}: run {marker.run_id} is still live; left alone ({entries})",
                    )
                )
                continue
            if dry_run:
                findings.append(
                    registry.SweepFinding(
                        target=ref,
                        run_id=marker.run_id,
                        expired=expired,
                        healed=False,
                        message=f"{ref}: would heal {entries} of run {marker.run_id} (dry run)",
                    )
                )
                continue
            try:
                healed = healing.heal(conn, ref, run_id=marker.run_id)
            except errors.ProviderError as exc:
                log.warning("sweep: healing %s failed: %s; it stays marked", ref, exc)
                findings.append(
                    registry.SweepFinding(
                        target=ref,
                        run_id=marker.run_id,
                        expired=expired,
                        healed=False,
                        message=f"{ref}: healing {entries} failed: {exc}",
                    )
                )
                continue
            findings.append(
                registry.SweepFinding(
                    target=ref,
                    run_id=marker.run_id,
                    expired=expired,
                    healed=True,
                    message=(
                        f"{ref}: healed {', '.join(healed) or 'nothing (already gone)'} of"
                        f" orphaned run {marker.run_id}"
                    ),
                )
            )
        return findings
