"""Absence: `people.mark-unavailable`, recording people as absent for a drill and revoking access.

Invariants:
- The absence itself is one journaled mutation per person (`people person user:…`): while
  it is applied (not yet reverted) the person is absent for the run, so manual steps are
  never assigned to them (`orchestrator.manual.absent_people` reads these entries).
  Undoing it changes nothing outside the journal.
- When the scenario asks (`revoke: [kubernetes-rbac, aws-iam]`), the live revocations are
  composed from the other providers' actions — `kubernetes.rbac.revoke-subject` (the
  person's User subject in every binding) and `aws.iam.suspend-access` (the IAM user of the
  same name, or `iamUsers[name]`) — planned by them (so their plan-time refusals, such as
  protected principals, hold) and journaled under their own action names, so rollback and
  `stormdrill recover` undo each with its own provider, newest first.
- Order: absences first, then Kubernetes, then AWS (rollback reinstates in reverse).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import ClassVar

import pydantic
from pydantic import alias_generators

from orchestrator import errors, manual, mutations, registry
from orchestrator.providers.aws import connecting as aws_connecting
from orchestrator.providers.aws import suspending
from orchestrator.providers.kubernetes import acting, rbac
from orchestrator.providers.people import connecting, directory

NAME = manual.ABSENCE_ACTION


class Revocation(enum.StrEnum):
    """Live access the absence takes away, by provider."""

    KUBERNETES_RBAC = "kubernetes-rbac"
    AWS_IAM = "aws-iam"


class MarkParams(pydantic.BaseModel):
    """`with:` of `people.mark-unavailable`."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    reason: str = "Stormdrill drill"
    revoke: tuple[Revocation, ...] = ()
    iam_users: dict[str, str] = pydantic.Field(default_factory=dict)
    """IAM user name per person (short name), when it differs from the person's name."""


_DELEGATES: Mapping[str, registry.ActionClass] = {
    rbac.RevokeSubjectAction.name: rbac.RevokeSubjectAction,
    suspending.SuspendAccess.name: suspending.SuspendAccess,
}


def _delegate(action: str) -> registry.Action[pydantic.BaseModel]:
    cls = _DELEGATES.get(action)
    if cls is None:
        raise errors.ProviderPermanent(
            f"{NAME} does not compose {action!r} (it composes {', '.join(sorted(_DELEGATES))})"
        )
    return cls()


class MarkUnavailable(registry.Action[MarkParams]):
    """Make people unavailable for the drill; optionally revoke their live access too."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = MarkParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({directory.PERSON, directory.TEAM})
    description: ClassVar[str] = (
        "Record people (a person, a team, an office group) as absent for the drill so manual"
        " steps are never assigned to them; with 'revoke: [kubernetes-rbac, aws-iam]' also"
        " remove them from Kubernetes RBAC bindings and suspend their IAM access (each undone"
        " by its own provider)."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: MarkParams,
    ) -> list[mutations.PlannedMutation]:
        catalog = connecting.of(ctx).catalog
        people = directory.people_of(catalog, targets)
        planned = [
            mutations.PlannedMutation(
                step="",
                target=directory.target_ref(person),
                action=NAME,
                params={"reason": params.reason},
                pre_state={"available": True},
                undo=mutations.UndoToken(
                    action=NAME, data={"person": str(person), "runId": str(ctx.run_id)}
                ),
            )
            for person in people
        ]
        person_refs = [directory.target_ref(person) for person in people]
        if Revocation.KUBERNETES_RBAC in params.revoke:
            planned.extend(
                rbac.RevokeSubjectAction().plan(ctx, targets=person_refs, params=acting.NoParams())
            )
        if Revocation.AWS_IAM in params.revoke:
            region = aws_connecting.of(ctx.connection(aws_connecting.PROVIDER)).region
            users = [
                mutations.TargetRef(
                    provider=aws_connecting.PROVIDER,
                    kind="iam-user",
                    name=params.iam_users.get(person.name, person.name),
                    region=region,
                )
                for person in people
            ]
            planned.extend(
                suspending.SuspendAccess().plan(
                    ctx, targets=users, params=suspending.SuspendParams()
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        if mutation.action == NAME:
            return None  # the journal entry is the absence
        return _delegate(mutation.action).apply(ctx, mutation=mutation)

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        if undo.action == NAME:
            return  # the absence ends when its entry is reverted
        _delegate(undo.action).revert(ctx, undo=undo)
