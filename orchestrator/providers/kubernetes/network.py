"""Network actions: NetworkPolicies that deny egress to addresses, or partition two groups.

Invariants:
- Each fault is a NetworkPolicy we create, named `stormdrill-<fault>-<short run id>-<hash>`
  (deterministic, so applying twice finds the first one), labelled and annotated with the run
  id; undo deletes exactly the policies we created (by name, run-id marker and uid): in one
  request with the uid and resourceVersion the create answered as preconditions, or, when
  those fail (the policy was changed or replaced), after reading it (`healing.heal`).
- NetworkPolicies only allow, so a denial is written as "allow everything except": egress to
  every pod (any namespace), to 0.0.0.0/0 and ::/0 minus the denied CIDRs, to the denied
  CIDRs on every port but the denied ones, and DNS (53/UDP+TCP) always.
- A partition isolates both sides (ingress and egress) from each other only; side A is the
  target's pods, side B `peerLabels` in `peerNamespace` (default: the target's namespace).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import (
    acting,
    connection,
    healing,
    markers,
    objects,
    targets,
)
from orchestrator.providers.kubernetes import errors as kube_errors

log = logging.getLogger(__name__)

WORKLOAD_KINDS = frozenset({"deployment", "statefulset", "pod", "namespace"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_PORT = 53
ANY_V4 = "0.0.0.0/0"
ANY_V6 = "::/0"
MAX_PORT = 65535


class DenyEgressParams(acting.Params):
    cidr: str | None = None
    cidrs: tuple[str, ...] = ()
    port: int | None = pydantic.Field(default=None, ge=1, le=MAX_PORT)
    ports: tuple[pydantic.conint(ge=1, le=MAX_PORT), ...] = ()  # type: ignore[valid-type]
    protocol: str = pydantic.Field(default="TCP", pattern="^(TCP|UDP|SCTP)$")

    @pydantic.model_validator(mode="after")
    def _check(self) -> DenyEgressParams:
        if not self.all_cidrs() and not self.all_ports():
            raise ValueError("give at least one of 'cidr'/'cidrs' or 'port'/'ports'")
        for cidr in self.all_cidrs():
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"'{cidr}' is not a CIDR such as '203.0.113.0/24'") from exc
        return self

    def all_cidrs(self) -> list[str]:
        found = [*([self.cidr] if self.cidr else []), *self.cidrs]
        return [str(ipaddress.ip_network(c, strict=False)) for c in found]

    def all_ports(self) -> list[int]:
        return sorted({*([self.port] if self.port else []), *self.ports})


def _port_ranges(protocol: str, denied: Sequence[int]) -> list[dict[str, Any]]:
    """Port entries covering 1-65535 of `protocol` except `denied`."""
    ranges: list[dict[str, Any]] = []
    start = 1
    for port in [*sorted(set(denied)), MAX_PORT + 1]:
        if port > start:
            entry: dict[str, Any] = {"protocol": protocol, "port": start}
            if port - 1 > start:
                entry["endPort"] = port - 1
            ranges.append(entry)
        start = port + 1
    return ranges


def _ip_blocks(denied: Sequence[str]) -> list[dict[str, Any]]:
    """Peers for everything outside the cluster except `denied`."""
    peers: list[dict[str, Any]] = []
    for everything in (ANY_V4, ANY_V6):
        universe = ipaddress.ip_network(everything)
        excepted = sorted(
            {
                str(net)
                for net in (ipaddress.ip_network(c, strict=False) for c in denied)
                if net.version == universe.version
            }
        )
        if everything in excepted:
            continue
        block: dict[str, Any] = {"cidr": everything}
        if excepted:
            block["except"] = excepted
        peers.append({"ipBlock": block})
    return peers


def deny_egress_rules(params: DenyEgressParams) -> list[dict[str, Any]]:
    """The egress allow-list that denies exactly what `params` names (see module docstring)."""
    cidrs = params.all_cidrs() or [ANY_V4, ANY_V6]
    ports = params.all_ports()
    everyone_in_cluster: dict[str, Any] = {"namespaceSelector": {}}
    rules: list[dict[str, Any]] = [{"to": [everyone_in_cluster, *_ip_blocks(cidrs)]}]
    if ports:
        other_ports = _port_ranges(params.protocol, ports) + [
            {"protocol": proto, "port": 1, "endPort": MAX_PORT}
            for proto in ("TCP", "UDP", "SCTP")
            if proto != params.protocol
        ]
        rules.append({"to": [{"ipBlock": {"cidr": c}} for c in cidrs], "ports": other_ports})
    rules.append(
        {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
    )
    return rules


def pod_selector(
    conn: connection.KubeConnection, ref: mutations.TargetRef
) -> tuple[str, dict[str, Any]]:
    """(namespace, podSelector) selecting the pods of a workload, pod or namespace target."""
    if ref.kind == "namespace":
        return ref.name, {}
    obj = objects.read(conn, ref)
    if obj is None:
        raise errors.ProviderPermanent(f"{ref}: it does not exist (was it removed?)")
    namespace = str(ref.namespace)
    if ref.kind == "pod":
        labels = targets.stable_labels(objects.labels_of(obj))
        if not labels:
            raise errors.ProviderPermanent(
                f"{ref}: the pod has no labels, so no NetworkPolicy can select it"
            )
        return namespace, {"matchLabels": labels}
    selector = (obj.get("spec") or {}).get("selector") or {}
    if not selector:
        raise errors.ProviderPermanent(f"{ref}: it has no spec.selector to select its pods by")
    return namespace, dict(selector)


def policy_name(fault: str, *, run_id: str, seed: Any) -> str:
    digest = hashlib.sha256(json.dumps(seed, sort_keys=True).encode()).hexdigest()[:8]
    return f"stormdrill-{fault}-{markers.short_run_id(run_id)}-{digest}"


def _policy(
    *,
    name: str,
    namespace: str,
    ctx: registry.ProviderContext,
    spec: Mapping[str, Any],
) -> dict[str, Any]:
    labels, annotations = markers.created_metadata(
        run_id=str(ctx.run_id), expires_at=ctx.expires_at
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": dict(spec),
    }


CREATED_KEY = "created"
"""Undo-token key: the `healing.snapshot` of each policy the apply created, by ref key."""


def policy_ref(name: str, namespace: str) -> mutations.TargetRef:
    return mutations.TargetRef(
        provider=connection.PROVIDER, kind="networkpolicy", name=name, namespace=namespace
    )


def create_policy(
    conn: connection.KubeConnection, body: Mapping[str, Any], *, run_id: str
) -> connection.KubeObject:
    """Create the policy; finding our own already there is success, anyone else's is not.

    Returns the policy as created (or as found).
    """
    meta = body["metadata"]
    ref = policy_ref(meta["name"], meta["namespace"])
    try:
        created: connection.KubeObject = conn.call(
            str(ref),
            conn.networking.create_namespaced_network_policy,
            meta["namespace"],
            dict(body),
        )
        log.info("created %s", ref)
        return created
    except kube_errors.AlreadyExists:
        existing = objects.read(conn, ref)
        marker = markers.read(existing) if existing is not None else None
        if existing is None or marker is None or marker.run_id != run_id:
            raise errors.ProviderPermanent(
                f"{ref}: a NetworkPolicy of that name exists and is not this run's; delete it"
                " or run `stormdrill recover`"
            ) from None
        return existing


def _policy_refs(undo: mutations.UndoToken) -> list[mutations.TargetRef]:
    raw = undo.data.get("policies") or []
    if not isinstance(raw, Sequence):
        return []
    return [mutations.TargetRef.from_json(item) for item in raw if isinstance(item, Mapping)]


class _PolicyAction(registry.Action[Any]):
    """Shared revert: delete the policies the token names, if they are still this run's.

    Apply keeps each created policy's `healing.snapshot` (uid, resourceVersion, markers) in
    the token under `created`, keyed by the policy's ref key: revert then deletes each with
    uid and resourceVersion preconditions in one request, and reads it first (`healing.heal`)
    only when a precondition fails or there is no snapshot.
    """

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        conn = connection.from_context(ctx)
        run_id = acting.token_str(undo, "runId") or str(ctx.run_id)
        created = undo.data.get(CREATED_KEY)
        snaps = created if isinstance(created, Mapping) else {}
        for ref in _policy_refs(undo):
            snap = snaps.get(ref.key)
            if isinstance(snap, Mapping):
                done = healing.heal_at_once(
                    conn, ref, run_id=run_id, key=healing.CREATED, snap=snap
                )
                if done is healing.AtOnce.ABSENT:
                    log.info("%s: already deleted or never created", ref)
                if done is not healing.AtOnce.FALL_BACK:
                    continue
            if not healing.heal(conn, ref, run_id=run_id, keys={healing.CREATED}):
                log.info("%s: already deleted or never created", ref)

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        bodies = mutation.undo.data.get("bodies") or []
        assert isinstance(bodies, Sequence)
        snaps: dict[str, mutations.JsonValue] = {}
        for body in bodies:
            if isinstance(body, Mapping):
                found = create_policy(conn, body, run_id=str(ctx.run_id))
                snap = healing.snapshot(found, key=healing.CREATED)
                if snap is not None:
                    snaps[objects.ref_of(found, kind="networkpolicy").key] = snap
        if not snaps:
            return None
        return mutations.UndoToken(
            action=mutation.undo.action, data={**mutation.undo.data, CREATED_KEY: snaps}
        )

    def _planned(
        self,
        ctx: registry.ProviderContext,
        *,
        ref: mutations.TargetRef,
        params: pydantic.BaseModel,
        bodies: Sequence[dict[str, Any]],
    ) -> mutations.PlannedMutation:
        refs = [policy_ref(b["metadata"]["name"], b["metadata"]["namespace"]) for b in bodies]
        return mutations.PlannedMutation(
            step="",
            target=ref,
            action=self.name,
            params=acting.params_json(params),
            pre_state={"policies": [r.to_json() for r in refs]},
            undo=mutations.UndoToken(
                action=self.name,
                data={
                    "target": ref.to_json(),
                    "runId": str(ctx.run_id),
                    "entry": healing.CREATED,
                    "policies": [r.to_json() for r in refs],
                    "bodies": list(bodies),
                },
            ),
        )


class DenyEgressAction(_PolicyAction):
    """Deny the target's pods egress to CIDRs (and/or ports) with a NetworkPolicy."""

    name: ClassVar[str] = "kubernetes.network.deny-egress"
    params_model: ClassVar[type[pydantic.BaseModel]] = DenyEgressParams
    target_kinds: ClassVar[frozenset[str]] = WORKLOAD_KINDS
    description: ClassVar[str] = (
        "Create a NetworkPolicy that lets the target's pods reach everything except the"
        " given CIDRs (on the given ports, if any); DNS stays open. Undo: delete it."
    )

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: DenyEgressParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        planned = []
        for ref in acting.require_kind(self.name, targets, WORKLOAD_KINDS):
            namespace, selector = pod_selector(conn, ref)
            spec = {
                "podSelector": selector,
                "policyTypes": ["Egress"],
                "egress": deny_egress_rules(params),
            }
            name = policy_name(
                "deny-egress", run_id=str(ctx.run_id), seed=[ref.key, acting.params_json(params)]
            )
            body = _policy(name=name, namespace=namespace, ctx=ctx, spec=spec)
            planned.append(self._planned(ctx, ref=ref, params=params, bodies=[body]))
        return planned


class PartitionParams(acting.Params):
    peer_labels: dict[str, str] = pydantic.Field(default_factory=dict)
    peer_namespace: str | None = None


def _not_side(namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Peers matching every pod except those with `labels` in `namespace` ({}: the namespace)."""
    peers: list[dict[str, Any]] = [
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [namespace]}
                ]
            }
        }
    ]
    for key, value in sorted(labels.items()):
        peers.append(
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
                "podSelector": {
                    "matchExpressions": [{"key": key, "operator": "NotIn", "values": [value]}]
                },
            }
        )
    return peers


def _isolating_spec(
    selector: Mapping[str, Any], *, other_namespace: str, other_labels: Mapping[str, str]
) -> dict[str, Any]:
    allowed = _not_side(other_namespace, other_labels) + _ip_blocks([])
    dns = {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
    return {
        "podSelector": dict(selector),
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": allowed}],
        "egress": [{"to": allowed}, dns],
    }


class PartitionAction(_PolicyAction):
    """Cut traffic both ways between the target's pods and a peer group, with two policies."""

    name: ClassVar[str] = "kubernetes.network.partition"
    params_model: ClassVar[type[pydantic.BaseModel]] = PartitionParams
    target_kinds: ClassVar[frozenset[str]] = WORKLOAD_KINDS
    description: ClassVar[str] = (
        "Partition the target's pods from the pods with 'peerLabels' in 'peerNamespace'"
        " (ingress and egress, both sides) with NetworkPolicies. Undo: delete them."
    )

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: PartitionParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        planned = []
        for ref in acting.require_kind(self.name, targets, WORKLOAD_KINDS):
            namespace, selector = pod_selector(conn, ref)
            if set(selector) - {"matchLabels"}:
                raise errors.ProviderPermanent(
                    f"{ref}: its pod selector uses matchExpressions, which a partition cannot"
                    " invert; target the pods by labels instead"
                )
            side_a = dict(selector.get("matchLabels") or {})
            peer_namespace = params.peer_namespace or namespace
            if peer_namespace == namespace and (not params.peer_labels or not side_a):
                raise errors.ProviderPermanent(
                    f"{ref}: both sides of the partition are in namespace {namespace}; give"
                    " 'peerLabels' (and target a labelled workload) or another 'peerNamespace'"
                )
            seed = [ref.key, acting.params_json(params)]
            base = policy_name("partition", run_id=str(ctx.run_id), seed=seed)
            spec_a = _isolating_spec(
                selector, other_namespace=peer_namespace, other_labels=params.peer_labels
            )
            spec_b = _isolating_spec(
                {"matchLabels": dict(params.peer_labels)} if params.peer_labels else {},
                other_namespace=namespace,
                other_labels=side_a,
            )
            bodies = [
                _policy(name=f"{base}-a", namespace=namespace, ctx=ctx, spec=spec_a),
                _policy(name=f"{base}-b", namespace=peer_namespace, ctx=ctx, spec=spec_b),
            ]
            planned.append(self._planned(ctx, ref=ref, params=params, bodies=bodies))
        return planned
