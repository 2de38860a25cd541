"""Node actions: cordon, drain (PDB-respecting evictions) and taint, each undone exactly.

Invariants:
- We only undo what we did: a node unschedulable before the drill is never uncordoned, an
  identical taint present before is never removed; the marker entry records which step did it.
- Drain evicts through `pods/eviction` (so PodDisruptionBudgets decide), retrying refused
  evictions until `timeout` x time scale; DaemonSet-owned, mirror, finished and the
  orchestrator's own pods are skipped. If the drain gives up it uncordons what it cordoned
  before raising `DrainFailed` (evicted pods are recreated by their controllers).
- The plan names every pod a drain evicts (`pre_state["touches"]`, read by the guardrails:
  namespace opt-in, orchestrator-self, services). A pod no controller owns would be lost for
  good: the plan refuses it (`pre_state["refusals"]`) unless the step says
  `deleteUnownedPods: true`; then each one is its own mutation, journaled with its manifest
  before it is deleted, and its undo recreates it. The node's own drain never evicts an
  unowned pod, nor a pod in a namespace its plan did not name (both are logged).
- Plans read each node and list its pods in bulk over many nodes (`listing`: nodes once,
  pods once, paginated, kept as slim facts and indexed by node), one by one over a few.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import (
    acting,
    connection,
    healing,
    listing,
    markers,
    objects,
)
from orchestrator.providers.kubernetes import errors as kube_errors
from scenarios import quantities

log = logging.getLogger(__name__)

NODE_KINDS = frozenset({"node"})
MIRROR_ANNOTATION = listing.MIRROR_ANNOTATION
POLL_MIN_S = 0.05
POLL_MAX_S = 2.0


def _unschedulable(node: Mapping[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def cordon(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    ctx: registry.ProviderContext,
    step: str,
) -> tuple[bool, connection.KubeObject]:
    """Make the node unschedulable; (True if this step did, now or on an earlier attempt;
    the node as it is afterwards)."""
    ours = False

    def change(node: connection.KubeObject) -> dict[str, Any] | None:
        nonlocal ours
        ours = False
        markers.check_free(node, run_id=str(ctx.run_id))
        mine = markers.entry(node, run_id=str(ctx.run_id), key=healing.CORDON)
        if _unschedulable(node):
            ours = mine is not None and mine.get("by") == step
            return None
        ours = True
        return {
            "spec": {"unschedulable": True},
            "metadata": markers.add_entry(
                node,
                run_id=str(ctx.run_id),
                expires_at=ctx.expires_at,
                key=healing.CORDON,
                data={"by": step},
            ),
        }

    after = objects.update(conn, ref, change)
    if after is None:
        raise errors.ProviderPermanent(f"{ref}: the node does not exist (was it removed?)")
    return ours, after


class CordonAction(acting.MarkedAction[acting.NoParams]):
    """Mark nodes unschedulable; undo uncordons only the nodes this step cordoned."""

    name: ClassVar[str] = "kubernetes.nodes.cordon"
    params_model: ClassVar[type[pydantic.BaseModel]] = acting.NoParams
    target_kinds: ClassVar[frozenset[str]] = NODE_KINDS
    description: ClassVar[str] = (
        "Mark nodes unschedulable so nothing new lands on them (undo: uncordon the nodes"
        " this step cordoned)."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: acting.NoParams,  # noqa: ARG002
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        refs = acting.require_kind(self.name, targets, NODE_KINDS)
        nodes = listing.nodes_named(ctx, conn, refs)
        planned = []
        for ref in refs:
            before = nodes[ref.name].unschedulable
            planned.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params={},
                    pre_state={"unschedulable": before},
                    undo=acting.token(
                        self.name,
                        target=ref,
                        run_id=str(ctx.run_id),
                        step="",
                        entry=None if before else healing.CORDON,
                        skip="unschedulable before the drill" if before else None,
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        ours, after = cordon(conn, mutation.target, ctx=ctx, step=mutation.step)
        return acting.applied(
            _stepped(mutation), entry=healing.CORDON if ours else None, after=after
        )


def _stepped(mutation: mutations.PlannedMutation) -> mutations.UndoToken:
    """The planned token with the step the engine assigned to the mutation."""
    return mutations.UndoToken(
        action=mutation.undo.action, data={**mutation.undo.data, "step": mutation.step}
    )


class DrainParams(acting.Params):
    timeout: quantities.Duration = quantities.Duration(300.0)
    respect_pod_disruption_budgets: bool = True
    ignore_daemon_sets: bool = True
    grace_period: quantities.Duration | None = None
    delete_unowned_pods: bool = False
    """Delete pods no controller owns (each journaled with its manifest; undo recreates it)."""


def _owner_kind(pod: Mapping[str, Any]) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("kind"))
    return None


def _pod_ref(pod: Mapping[str, Any]) -> mutations.TargetRef:
    return objects.ref_of(pod, kind="pod")


def pods_to_evict(
    conn: connection.KubeConnection,
    node: str,
    *,
    ctx: registry.ProviderContext,
    ignore_daemon_sets: bool,
) -> list[connection.KubeObject]:
    """The pods a drain of `node` must remove (see the module docstring for what is skipped)."""
    found = listing.all_objects(
        conn,
        f"pods on node {node}",
        conn.core.list_pod_for_all_namespaces,
        field_selector=f"spec.nodeName={node}",
    )
    return evictable(found, node, ctx=ctx, ignore_daemon_sets=ignore_daemon_sets)


def evictable(
    pods: Sequence[connection.KubeObject],
    node: str,
    *,
    ctx: registry.ProviderContext,
    ignore_daemon_sets: bool,
) -> list[connection.KubeObject]:
    """Of `pods` (those bound to `node`, as the API wrote them), the ones a drain must remove."""
    return [
        pod
        for pod in pods
        if _must_evict(listing.pod_facts(pod), node, ctx=ctx, ignore_daemon_sets=ignore_daemon_sets)
    ]


def evictable_facts(
    pods: Sequence[listing.PodFacts],
    node: str,
    *,
    ctx: registry.ProviderContext,
    ignore_daemon_sets: bool,
) -> list[listing.PodFacts]:
    """Of `pods` (the facts of those bound to `node`), the ones a drain must remove."""
    return [
        pod
        for pod in pods
        if _must_evict(pod, node, ctx=ctx, ignore_daemon_sets=ignore_daemon_sets)
    ]


def _must_evict(
    pod: listing.PodFacts,
    node: str,
    *,
    ctx: registry.ProviderContext,
    ignore_daemon_sets: bool,
) -> bool:
    """Whether a drain of `node` removes `pod` (mirror, finished, own pods stay; DaemonSet
    pods stay, or refuse the drain, per `ignore_daemon_sets`)."""
    if pod.mirror or pod.phase in ("Succeeded", "Failed"):
        return False
    me = ctx.environment.spec.orchestrator
    if (
        me is not None
        and me.pod_name
        and pod.name == me.pod_name
        and (me.namespace is None or pod.namespace == me.namespace)
    ):
        log.warning(
            "drain of %s leaves pod %s alone: it is the orchestrator itself", node, pod.path
        )
        return False
    if pod.owner == "DaemonSet":
        if ignore_daemon_sets:
            return False
        raise kube_errors.DrainFailed(
            f"node {node}: pod {pod.path} belongs to a DaemonSet and would come straight back;"
            " set 'ignoreDaemonSets: true' to drain anyway"
        )
    return True


MANIFEST_METADATA = ("name", "namespace", "labels", "annotations")
"""What of a pod's metadata its recreation keeps (uid, resourceVersion… are the server's)."""


def _touch(pod: listing.PodFacts) -> dict[str, mutations.JsonValue]:
    """A pod the drain evicts, as the guardrails read it: its ref, labels and owner."""
    touched: dict[str, mutations.JsonValue] = {
        **pod.ref.to_json(),
        "labels": dict(pod.labels),
        "owner": pod.owner,
    }
    return touched


def manifest_of(pod: Mapping[str, Any]) -> dict[str, mutations.JsonValue]:
    """What recreating `pod` needs: its metadata that is ours to give, and its spec."""
    meta = pod.get("metadata") or {}
    kept: dict[str, Any] = {key: meta[key] for key in MANIFEST_METADATA if meta.get(key)}
    annotations = {
        k: v for k, v in (kept.get("annotations") or {}).items() if not k.startswith("stormdrill.")
    }
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    return mutations.freeze_json(
        {"apiVersion": "v1", "kind": "Pod", "metadata": kept, "spec": pod.get("spec") or {}},
        what=f"manifest of pod {meta.get('namespace')}/{meta.get('name')}",
    )


def _unowned_refusal(node: str, pod: listing.PodFacts) -> dict[str, mutations.JsonValue]:
    where = pod.path
    return {
        "rule": "unowned-pods",
        "subject": f"pod {where}",
        "message": (
            f"draining node {node} would delete pod {where}, which no controller owns: it"
            " would be lost for good (kubectl drain refuses it too); move it first, or set"
            " 'deleteUnownedPods: true' on the step to delete it (journaled with its manifest"
            " and recreated by the undo)"
        ),
    }


def _pod_names(pods: Sequence[Mapping[str, Any]]) -> list[mutations.JsonValue]:
    return [
        f"{(p.get('metadata') or {}).get('namespace')}/{(p.get('metadata') or {}).get('name')}"
        for p in pods
    ]


def _grace(params: DrainParams) -> int | None:
    return None if params.grace_period is None else math.ceil(params.grace_period.seconds)


def _evict(conn: connection.KubeConnection, pod: Mapping[str, Any], *, params: DrainParams) -> None:
    ref = _pod_ref(pod)
    if not params.respect_pod_disruption_budgets:
        objects.delete(conn, ref, uid=ref.uid, grace_period_s=_grace(params))
        return
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": ref.name, "namespace": ref.namespace},
    }
    grace = _grace(params)
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    try:
        conn.call(
            f"eviction of {ref}",
            conn.core.create_namespaced_pod_eviction,
            ref.name,
            ref.namespace,
            body,
        )
    except kube_errors.NotFound:
        return


def _planned_only(
    pods: Sequence[connection.KubeObject], node: str, *, namespaces: frozenset[str] | None
) -> list[connection.KubeObject]:
    """Of `pods`, those the node's drain itself may evict: owned, in a planned namespace."""
    chosen = []
    for pod in pods:
        ref = _pod_ref(pod)
        if _owner_kind(pod) is None:
            log.info(
                "drain of %s does not evict pod %s/%s: no controller owns it (only a planned"
                " 'deleteUnownedPods' mutation may delete it)",
                node,
                ref.namespace,
                ref.name,
            )
            continue
        if namespaces is not None and ref.namespace not in namespaces:
            log.warning(
                "drain of %s does not evict pod %s/%s: its namespace was not in the plan",
                node,
                ref.namespace,
                ref.name,
            )
            continue
        chosen.append(pod)
    return chosen


def drain(
    conn: connection.KubeConnection,
    node: str,
    *,
    ctx: registry.ProviderContext,
    params: DrainParams,
    namespaces: frozenset[str] | None = None,
) -> list[mutations.JsonValue]:
    """Evict every owned pod `pods_to_evict` names (in `namespaces`, when given) and wait
    until they are gone; the evicted pods.

    Raises `DrainFailed` when the (scaled) timeout passes first.
    """
    deadline = time.monotonic() + params.timeout.seconds * ctx.time_scale
    found = pods_to_evict(conn, node, ctx=ctx, ignore_daemon_sets=params.ignore_daemon_sets)
    pending = {str(_pod_ref(p).uid): p for p in _planned_only(found, node, namespaces=namespaces)}
    evicted: list[connection.KubeObject] = []
    refusals: dict[str, str] = {}
    delay = POLL_MIN_S
    while pending:
        for uid, pod in list(pending.items()):
            try:
                _evict(conn, pod, params=params)
            except kube_errors.TooManyRequests as exc:
                refusals[uid] = str(exc)
                continue
            evicted.append(pod)
            refusals.pop(uid, None)
            del pending[uid]
        if not pending:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            blocked = "; ".join(refusals.get(uid, "not evicted yet") for uid in pending)
            raise kube_errors.DrainFailed(
                f"node {node}: {len(pending)} pod(s) could not be evicted within"
                f" {params.timeout} (x{ctx.time_scale:g} time scale): {blocked}. A"
                " PodDisruptionBudget never allowed the eviction; scale the workload up, relax"
                " the budget, or raise 'timeout'"
            )
        time.sleep(min(delay, remaining))
        delay = min(POLL_MAX_S, delay * 2)
    _wait_gone(conn, node, evicted, deadline=deadline)
    return _pod_names(evicted)


def _wait_gone(
    conn: connection.KubeConnection,
    node: str,
    evicted: Sequence[Mapping[str, Any]],
    *,
    deadline: float,
) -> None:
    waiting = {str(_pod_ref(p).uid) for p in evicted}
    delay = POLL_MIN_S
    while waiting:
        answer = conn.call(
            f"pods on node {node}",
            conn.core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node}",
        )
        present = {str((p.get("metadata") or {}).get("uid")) for p in objects.items(answer)}
        waiting &= present
        if not waiting:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise kube_errors.DrainFailed(
                f"node {node}: {len(waiting)} evicted pod(s) are still terminating at the"
                " timeout; raise 'timeout' or lower 'gracePeriod'"
            )
        time.sleep(min(delay, remaining))
        delay = min(POLL_MAX_S, delay * 2)


class DrainAction(acting.MarkedAction[DrainParams]):
    """Cordon nodes and evict their pods; undo uncordons what this step cordoned."""

    name: ClassVar[str] = "kubernetes.nodes.drain"
    params_model: ClassVar[type[pydantic.BaseModel]] = DrainParams
    target_kinds: ClassVar[frozenset[str]] = NODE_KINDS
    description: ClassVar[str] = (
        "Cordon nodes and evict their pods through the eviction API (PodDisruptionBudgets"
        " respected, DaemonSet and mirror pods skipped). Pods no controller owns are refused"
        " unless 'deleteUnownedPods: true' (then journaled with their manifest). Undo:"
        " uncordon what this step cordoned and recreate deleted unowned pods; evicted owned"
        " pods are recreated elsewhere by their controllers."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: DrainParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        refs = acting.require_kind(self.name, targets, NODE_KINDS)
        nodes = listing.nodes_named(ctx, conn, refs)
        on_node = listing.pods_on_nodes(ctx, conn, [ref.name for ref in refs])
        planned = []
        unowned: list[mutations.PlannedMutation] = []
        params_json = acting.params_json(params)  # each mutation freezes its own copy
        for ref in refs:
            before = nodes[ref.name].unschedulable
            pods = evictable_facts(
                on_node[ref.name], ref.name, ctx=ctx, ignore_daemon_sets=params.ignore_daemon_sets
            )
            bare = [p for p in pods if p.owner is None]
            pre_state: dict[str, mutations.JsonValue] = {
                "unschedulable": before,
                "pods": [p.path for p in pods],
                "touches": [_touch(p) for p in pods],
            }
            if bare and not params.delete_unowned_pods:
                pre_state["refusals"] = [_unowned_refusal(ref.name, p) for p in bare]
            planned.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params=params_json,
                    pre_state=pre_state,
                    undo=acting.token(
                        self.name,
                        target=ref,
                        run_id=str(ctx.run_id),
                        step="",
                        entry=None if before else healing.CORDON,
                        evicted=[],
                    ),
                )
            )
            if params.delete_unowned_pods:
                unowned.extend(self._plan_unowned(ctx, ref.name, bare, params=params))
        return [*planned, *unowned]

    def _plan_unowned(
        self,
        ctx: registry.ProviderContext,
        node: str,
        pods: Sequence[listing.PodFacts],
        *,
        params: DrainParams,
    ) -> list[mutations.PlannedMutation]:
        """One mutation per unowned pod: delete it; the undo holds its whole manifest."""
        found = []
        for pod in pods:
            ref = pod.ref
            if pod.bare is None:  # a listing keeps the object of every unowned pod
                raise errors.ProviderPermanent(f"{ref}: no manifest was kept for it; plan again")
            found.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params=acting.params_json(params),
                    pre_state={"drainedFrom": node, "unowned": True},
                    undo=acting.token(
                        self.name,
                        target=ref,
                        run_id=str(ctx.run_id),
                        step="",
                        entry=None,
                        manifest=manifest_of(pod.bare),
                    ),
                )
            )
        return found

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        manifest = undo.data.get("manifest")
        if isinstance(manifest, Mapping):
            recreate_pod(connection.from_context(ctx), manifest)
            return
        super().revert(ctx, undo=undo)

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        params = self.parse_params(mutation.params)
        if mutation.target.kind == "pod":
            delete_unowned(conn, mutation.target, ctx=ctx, params=params)
            return _stepped(mutation)
        ours, after = cordon(conn, mutation.target, ctx=ctx, step=mutation.step)
        try:
            evicted = drain(
                conn,
                mutation.target.name,
                ctx=ctx,
                params=params,
                namespaces=_planned_namespaces(mutation),
            )
        except errors.ProviderPermanent:
            if ours:
                log.warning(
                    "drain of %s failed; uncordoning it (this step cordoned it)", mutation.target
                )
                healing.heal(
                    conn,
                    mutation.target,
                    run_id=str(ctx.run_id),
                    keys={healing.CORDON},
                    step=mutation.step,
                )
            raise
        return acting.applied(
            _stepped(mutation),
            entry=healing.CORDON if ours else None,
            after=after,  # evictions change none of what the snapshot keeps
            evicted=evicted,
        )


def _planned_namespaces(mutation: mutations.PlannedMutation) -> frozenset[str] | None:
    touches = mutation.pre_state.get("touches")
    if not isinstance(touches, Sequence):
        return None
    return frozenset(
        str(t.get("namespace")) for t in touches if isinstance(t, Mapping) and t.get("namespace")
    )


def delete_unowned(
    conn: connection.KubeConnection,
    ref: mutations.TargetRef,
    *,
    ctx: registry.ProviderContext,
    params: DrainParams,
) -> None:
    """Evict the unowned pod `ref` (the very incarnation planned) and wait until it is gone."""
    current = objects.read(conn, ref)
    if current is None:
        log.info("%s is already gone; nothing to delete", ref)
        return
    if ref.uid and (current.get("metadata") or {}).get("uid") != ref.uid:
        log.warning("%s was replaced since the plan; the new pod is left alone", ref)
        return
    deadline = time.monotonic() + params.timeout.seconds * ctx.time_scale
    delay = POLL_MIN_S
    while True:
        try:
            _evict(conn, current, params=params)
            break
        except kube_errors.TooManyRequests as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise kube_errors.DrainFailed(
                    f"{ref}: could not be evicted within {params.timeout}: {exc}"
                ) from exc
            time.sleep(min(delay, remaining))
            delay = min(POLL_MAX_S, delay * 2)
    node = str((current.get("spec") or {}).get("nodeName") or "")
    _wait_gone(conn, node, [current], deadline=deadline)


def recreate_pod(conn: connection.KubeConnection, manifest: Mapping[str, Any]) -> None:
    """Create the pod `manifest` describes unless a pod of that name exists (idempotent)."""
    meta = manifest.get("metadata") or {}
    ref = mutations.TargetRef(
        provider=connection.PROVIDER,
        kind="pod",
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
    )
    if objects.read(conn, ref) is not None:
        log.info("%s exists; not recreated", ref)
        return
    try:
        conn.call(
            f"re-creation of {ref}",
            conn.core.create_namespaced_pod,
            ref.namespace,
            dict(manifest),
        )
    except kube_errors.AlreadyExists:
        log.info("%s was recreated meanwhile", ref)
        return
    log.info("recreated %s from its journaled manifest", ref)


class TaintEffect(enum.StrEnum):
    NO_SCHEDULE = "NoSchedule"
    NO_EXECUTE = "NoExecute"


class TaintParams(acting.Params):
    key: str = pydantic.Field(
        min_length=1, max_length=253, pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*$"
    )
    value: str = ""
    effect: TaintEffect = TaintEffect.NO_SCHEDULE

    def taint(self) -> dict[str, mutations.JsonValue]:
        found: dict[str, mutations.JsonValue] = {"key": self.key, "effect": self.effect.value}
        if self.value:
            found["value"] = self.value
        return found


def _taints(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(t) for t in ((node.get("spec") or {}).get("taints") or [])]


class TaintAction(acting.MarkedAction[TaintParams]):
    """Add a taint to nodes; undo removes only the taint this step added."""

    name: ClassVar[str] = "kubernetes.nodes.taint"
    params_model: ClassVar[type[pydantic.BaseModel]] = TaintParams
    target_kinds: ClassVar[frozenset[str]] = NODE_KINDS
    description: ClassVar[str] = (
        "Add a NoSchedule or NoExecute taint to nodes (NoExecute evicts untolerating pods)."
        " Undo: remove the taint this step added, restoring any taint it replaced."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: TaintParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        ours = params.taint()
        refs = acting.require_kind(self.name, targets, NODE_KINDS)
        nodes = listing.nodes_named(ctx, conn, refs)
        planned = []
        for ref in refs:
            taints = [dict(t) for t in nodes[ref.name].taints]
            present = any(healing.same_taint(t, ours) for t in taints)
            planned.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params=acting.params_json(params),
                    pre_state={"taints": taints},
                    undo=acting.token(
                        self.name,
                        target=ref,
                        run_id=str(ctx.run_id),
                        step="",
                        entry=None if present else healing.taint_key(ours),
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        ours = self.parse_params(mutation.params).taint()
        key = healing.taint_key(ours)
        added = False

        def change(node: connection.KubeObject) -> dict[str, Any] | None:
            nonlocal added
            added = False
            markers.check_free(node, run_id=str(ctx.run_id))
            taints = _taints(node)
            if any(healing.same_taint(t, ours) for t in taints):
                mine = markers.entry(node, run_id=str(ctx.run_id), key=key)
                added = mine is not None and mine.get("by") == mutation.step
                return None
            replaced = next(
                (
                    t
                    for t in taints
                    if t.get("key") == ours["key"] and t.get("effect") == ours["effect"]
                ),
                None,
            )
            kept = [t for t in taints if t is not replaced]
            added = True
            return {
                "spec": {"taints": [*kept, ours]},
                "metadata": markers.add_entry(
                    node,
                    run_id=str(ctx.run_id),
                    expires_at=ctx.expires_at,
                    key=key,
                    data={"by": mutation.step, "taint": ours, "replaced": replaced},
                ),
            }

        after = objects.update(conn, mutation.target, change)
        if after is None:
            raise errors.ProviderPermanent(f"{mutation.target}: the node does not exist")
        return acting.applied(_stepped(mutation), entry=key if added else None, after=after)
