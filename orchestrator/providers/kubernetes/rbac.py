"""RBAC action: remove a user, group or service account from every binding that names it.

Invariants:
- One mutation per (subject, binding): RoleBindings in every namespace and ClusterRoleBindings.
- The marker entry on each binding keeps the exact subjects list before the removal and what
  was removed; undo restores that list (order included) when the binding still holds what we
  left, and otherwise re-adds only what we removed. A deleted binding stays deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import pydantic

from orchestrator import mutations, registry
from orchestrator.providers.kubernetes import (
    acting,
    connection,
    healing,
    markers,
    objects,
    targets,
)

log = logging.getLogger(__name__)

SUBJECT_KINDS = frozenset({"subject", "person", "team"})


def _subject_json(subject: targets.Subject) -> dict[str, mutations.JsonValue]:
    found: dict[str, mutations.JsonValue] = {"kind": subject.kind, "name": subject.name}
    if subject.namespace:
        found["namespace"] = subject.namespace
    return found


def bindings_of(
    conn: connection.KubeConnection, subject: targets.Subject
) -> list[tuple[mutations.TargetRef, list[dict[str, Any]]]]:
    """Every binding naming `subject`: (its ref, its subjects list)."""
    found = []
    for kind, what, method in (
        ("rolebinding", "rolebindings", conn.rbac.list_role_binding_for_all_namespaces),
        ("clusterrolebinding", "clusterrolebindings", conn.rbac.list_cluster_role_binding),
    ):
        for binding in objects.items(conn.call(what, method)):
            subjects = [dict(s) for s in binding.get("subjects") or []]
            if any(subject.matches(s) for s in subjects):
                found.append((objects.ref_of(binding, kind=kind), subjects))
    return sorted(found, key=lambda item: item[0].key)


class RevokeSubjectAction(acting.MarkedAction[acting.NoParams]):
    """Remove a subject from RoleBindings and ClusterRoleBindings; undo puts it back."""

    name: ClassVar[str] = "kubernetes.rbac.revoke-subject"
    params_model: ClassVar[type[pydantic.BaseModel]] = acting.NoParams
    target_kinds: ClassVar[frozenset[str]] = SUBJECT_KINDS
    description: ClassVar[str] = (
        "Remove an RBAC subject (a 'subject' target such as User:alice, or a person/team) from"
        " every RoleBinding and ClusterRoleBinding. Undo: restore each binding's subjects."
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
        planned = []
        for ref in acting.require_kind(self.name, targets, SUBJECT_KINDS):
            subject = targets_subject(ref)
            bindings = bindings_of(conn, subject)
            if not bindings:
                log.info("%s is named in no RoleBinding or ClusterRoleBinding", subject)
            for binding, subjects in bindings:
                removed = [s for s in subjects if subject.matches(s)]
                planned.append(
                    mutations.PlannedMutation(
                        step="",
                        target=binding,
                        action=self.name,
                        params={},
                        pre_state={"subjects": subjects, "subject": str(subject)},
                        undo=acting.token(
                            self.name,
                            target=binding,
                            run_id=str(ctx.run_id),
                            step="",
                            entry=healing.subject_key(_subject_json(subject)),
                            subject=_subject_json(subject),
                            removed=removed,
                        ),
                    )
                )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        conn = connection.from_context(ctx)
        raw = mutation.undo.data.get("subject")
        subject = targets.Subject.of(raw if isinstance(raw, dict) else {})
        key = healing.subject_key(_subject_json(subject))
        run_id = str(ctx.run_id)
        ours = False

        def change(binding: connection.KubeObject) -> dict[str, Any] | None:
            nonlocal ours
            markers.check_free(binding, run_id=run_id)
            subjects = [dict(s) for s in binding.get("subjects") or []]
            removed = [s for s in subjects if subject.matches(s)]
            if not removed:
                mine = markers.entry(binding, run_id=run_id, key=key)
                ours = mine is not None and mine.get("by") == mutation.step
                return None
            ours = True
            return {
                "subjects": [s for s in subjects if not subject.matches(s)],
                "metadata": markers.add_entry(
                    binding,
                    run_id=run_id,
                    expires_at=ctx.expires_at,
                    key=key,
                    data={"by": mutation.step, "subjects": subjects, "removed": removed},
                ),
            }

        after = objects.update(conn, mutation.target, change)
        if after is None:
            log.info("%s is gone; nothing to revoke there", mutation.target)
        stepped = mutations.UndoToken(
            action=mutation.undo.action, data={**mutation.undo.data, "step": mutation.step}
        )
        return acting.applied(stepped, entry=key if ours else None, after=after)


def targets_subject(ref: mutations.TargetRef) -> targets.Subject:
    return targets.subject_of_ref(ref)
