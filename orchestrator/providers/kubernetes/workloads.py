"""Workload actions: delete pods (not revertible: controllers recreate them) and scale.

Invariants:
- `kubernetes.pods.delete` deletes only the incarnation planned (uid precondition): a pod
  recreated under the same name is left alone. It is `revertible=False`, so scenarios must say
  `rollback: none` with `irreversible: <why>` (scenarios/linting.py).
- `kubernetes.deployment.scale` writes its marker (with the replica count it saw) before it
  scales. Its undo restores that count and removes the marker in one JSON Patch of the
  workload's spec.replicas (`healing.heal_at_once`); when the object is not as the apply left
  it, through the scale subresource before removing the marker (`healing.heal`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.kubernetes import acting, connection, healing, markers, objects
from scenarios import quantities

log = logging.getLogger(__name__)

POD_KINDS = frozenset({"pod"})
SCALABLE_KINDS = frozenset({"deployment", "statefulset"})


class DeletePodsParams(acting.Params):
    grace_period: quantities.Duration | None = None
    count: quantities.Quantity | None = None
    """Delete only this many (or this share) of the selected pods, first by name."""


class DeletePodsAction(registry.Action[DeletePodsParams]):
    """Delete pods; their controllers recreate them (nothing to undo)."""

    name: ClassVar[str] = "kubernetes.pods.delete"
    params_model: ClassVar[type[pydantic.BaseModel]] = DeletePodsParams
    target_kinds: ClassVar[frozenset[str]] = POD_KINDS
    description: ClassVar[str] = (
        "Delete the selected pods (optionally only 'count' of them). Not revertible: their"
        " controllers recreate them; use 'rollback: none' and 'irreversible: <why>'."
    )
    revertible: ClassVar[bool] = False
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: DeletePodsParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        refs = sorted(
            acting.require_kind(self.name, targets, POD_KINDS),
            key=lambda r: (r.namespace or "", r.name),
        )
        if params.count is not None:
            limit = params.count if isinstance(params.count, int) else params.count.of(len(refs))
            refs = refs[:limit]
        planned = []
        for ref in refs:
            pod = objects.read(conn, ref)
            if pod is None:
                log.info("%s is already gone; nothing to delete", ref)
                continue
            uid = (pod.get("metadata") or {}).get("uid")
            owner = next(
                (
                    f"{o.get('kind')}/{o.get('name')}"
                    for o in (pod.get("metadata") or {}).get("ownerReferences") or []
                    if o.get("controller")
                ),
                None,
            )
            ref = mutations.TargetRef(
                provider=ref.provider,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                uid=uid,
            )
            planned.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params=acting.params_json(params),
                    pre_state={
                        "uid": uid,
                        "node": (pod.get("spec") or {}).get("nodeName"),
                        "owner": owner,
                    },
                    undo=acting.token(
                        self.name, target=ref, run_id=str(ctx.run_id), step="", entry=None
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        params = self.parse_params(mutation.params)
        grace = None if params.grace_period is None else math.ceil(params.grace_period.seconds)
        gone = not objects.delete(
            connection.from_context(ctx),
            mutation.target,
            uid=mutation.target.uid,
            grace_period_s=grace,
        )
        if gone:
            log.info("%s was already gone", mutation.target)
        return None

    def revert(
        self,
        ctx: registry.ProviderContext,  # noqa: ARG002
        *,
        undo: mutations.UndoToken,
    ) -> None:
        log.info(
            "%s on %s: nothing to undo (its controller recreates the pod)",
            undo.action,
            acting.token_target(undo),
        )


class ScaleParams(acting.Params):
    replicas: int = pydantic.Field(ge=0)


def _replicas(obj: connection.KubeObject) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


class ScaleAction(acting.MarkedAction[ScaleParams]):
    """Set a deployment's (or statefulset's) replicas; undo restores the count we saw."""

    name: ClassVar[str] = "kubernetes.deployment.scale"
    params_model: ClassVar[type[pydantic.BaseModel]] = ScaleParams
    target_kinds: ClassVar[frozenset[str]] = SCALABLE_KINDS
    description: ClassVar[str] = (
        "Scale deployments (or statefulsets) to 'replicas' through the scale subresource."
        " Undo: restore the replica count seen before."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: ScaleParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connection.from_context(ctx)
        planned = []
        for ref in acting.require_kind(self.name, targets, SCALABLE_KINDS):
            scale = objects.read_scale(conn, ref)
            if scale is None:
                raise errors.ProviderPermanent(f"{ref}: it does not exist (was it removed?)")
            before = _replicas(scale)
            planned.append(
                mutations.PlannedMutation(
                    step="",
                    target=ref,
                    action=self.name,
                    params=acting.params_json(params),
                    pre_state={"replicas": before},
                    undo=acting.token(
                        self.name,
                        target=ref,
                        run_id=str(ctx.run_id),
                        step="",
                        entry=None if before == params.replicas else healing.SCALE,
                        replicas=before,
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        wanted = self.parse_params(mutation.params).replicas
        run_id = str(ctx.run_id)
        seen: int | None = None
        ours = False

        def change(obj: connection.KubeObject) -> dict[str, object] | None:
            nonlocal seen, ours
            markers.check_free(obj, run_id=run_id)
            mine = markers.entry(obj, run_id=run_id, key=healing.SCALE)
            if mine is not None:
                # An earlier attempt of this step (keep the count it saw), or an earlier step
                # of this run (its entry already restores the original count).
                ours = mine.get("by") == mutation.step
                raw = mine.get("replicas")
                seen = raw if isinstance(raw, int) else None
                return None
            seen = _replicas(obj)
            ours = seen != wanted
            if not ours:
                return None
            return {
                "metadata": markers.add_entry(
                    obj,
                    run_id=run_id,
                    expires_at=ctx.expires_at,
                    key=healing.SCALE,
                    data={"by": mutation.step, "replicas": seen},
                )
            }

        marked = objects.update(conn, mutation.target, change)
        if marked is None:
            raise errors.ProviderPermanent(f"{mutation.target}: it does not exist")
        if (ours or seen != wanted) and not objects.set_replicas(conn, mutation.target, wanted):
            raise errors.ProviderPermanent(f"{mutation.target}: it disappeared while scaling")
        stepped = mutations.UndoToken(
            action=mutation.undo.action, data={**mutation.undo.data, "step": mutation.step}
        )
        # Scaling changes spec.replicas only, none of what the snapshot keeps of `marked`.
        return acting.applied(
            stepped, entry=healing.SCALE if ours else None, after=marked, replicas=seen
        )
