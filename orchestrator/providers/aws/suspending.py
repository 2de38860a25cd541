"""Suspending: `aws.iam.suspend-access`, taking a person's AWS access away for a drill.

Invariants:
- Protected principals (Environment `spec.aws.protectedPrincipals`, by user name or ARN,
  and users tagged `stormdrill:protected=true`) are refused at plan time.
- Before anything changes, the user is tagged `stormdrill:run-id`, `stormdrill:expires-at`
  and `stormdrill:suspended-keys` (the access keys that were Active, `/`-separated); then
  the inline deny-all policy `stormdrill-suspended-<run>` is attached and those keys are
  made Inactive.
- Undo, gated on this run's tag or policy: re-activate exactly the keys in the tag (keys
  deleted meanwhile are skipped), delete the policy, then remove the tags.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Final

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

log = logging.getLogger(__name__)

NAME = "aws.iam.suspend-access"
DENY_ALL: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StormdrillSuspended", "Effect": "Deny", "Action": "*", "Resource": "*"}
        ],
    }
)


class SuspendParams(pydantic.BaseModel):
    """No parameters: every active key is deactivated and a deny-all policy attached."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def user_tags(iam: IAMClient, user: str) -> dict[str, str]:
    return markers.as_dict(iam.list_user_tags(UserName=user)["Tags"])


def protection(iam: IAMClient, *, user: str, protected: Sequence[str]) -> str | None:
    """Why `user` must never be suspended, or None."""
    arn = iam.get_user(UserName=user)["User"]["Arn"]
    if user in protected or arn in protected:
        return "listed in the Environment's spec.aws.protectedPrincipals (break-glass/admin)"
    if user_tags(iam, user).get(markers.PROTECTED) == "true":
        return f"tagged {markers.PROTECTED}=true"
    return None


def active_keys(iam: IAMClient, user: str) -> list[str]:
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return sorted(k["AccessKeyId"] for k in keys if k.get("Status") == "Active")


def reinstate(iam: IAMClient, *, user: str, keys: Sequence[str], policy: str) -> list[str]:
    """Re-activate `keys`, delete `policy`, drop the markers; notes for a person."""
    notes: list[str] = []
    existing = {
        k["AccessKeyId"]: k.get("Status")
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }
    for key in keys:
        if key not in existing:
            notes.append(f"access key {key} was deleted during the drill; not re-activated")
        elif existing[key] != "Active":
            iam.update_access_key(UserName=user, AccessKeyId=key, Status="Active")
    try:
        iam.delete_user_policy(UserName=user, PolicyName=policy)
    except wrapping.ClientError as exc:
        if wrapping.code(exc) != "NoSuchEntity":
            raise
    keys_to_drop = markers.stormdrill_keys(user_tags(iam, user))
    if keys_to_drop:
        iam.untag_user(UserName=user, TagKeys=keys_to_drop)
    for note in notes:
        log.warning("reinstating %s: %s", user, note)
    return notes


class SuspendAccess(registry.Action[SuspendParams]):
    """Deactivate an IAM user's access keys and deny everything with an inline policy."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = SuspendParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"iam-user"})
    description: ClassVar[str] = (
        "Suspend an IAM user: deactivate their active access keys and attach an explicit "
        "deny-all inline policy; undo re-activates exactly those keys and removes the policy. "
        "Refuses protected (break-glass/admin) principals."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: SuspendParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        iam = conn.iam()
        policy = markers.policy_name(str(ctx.run_id))
        planned: list[mutations.PlannedMutation] = []
        for target in targets:
            with wrapping.edge(target):
                try:
                    why = protection(iam, user=target.name, protected=conn.protected_principals)
                except wrapping.ClientError as exc:
                    if wrapping.code(exc) == "NoSuchEntity":
                        raise errors.ProviderPermanent(f"{target}: no such IAM user") from exc
                    raise
                if why is not None:
                    raise errors.ProviderPermanent(
                        f"{target}: refusing to suspend a protected principal ({why}); pick "
                        "another person or remove the protection deliberately"
                    )
                marker = markers.read(user_tags(iam, target.name))
                keys = active_keys(iam, target.name)
            if marker is not None:
                raise errors.ProviderPermanent(
                    f"{target}: already suspended by run {marker.run_id}; undo that run first "
                    "(`stormdrill recover`)"
                )
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(),
                    pre_state={"activeKeys": list(keys)},
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "user": target.name,
                            "policy": policy,
                            "keys": list(keys),
                        },
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        iam = connecting.of(ctx.connection(connecting.PROVIDER)).iam()
        data = mutation.undo.data
        user = fields.text(data, "user", owner=NAME)
        policy = fields.text(data, "policy", owner=NAME)
        with wrapping.edge(mutation.target):
            existing = user_tags(iam, user)
            if markers.read(existing) is not None:
                keys = markers.words(markers.join(existing, markers.SUSPENDED_KEYS))
            else:
                keys = active_keys(iam, user)
                tags = markers.fault_tags(
                    run_id=str(ctx.run_id),
                    expires_at=ctx.expires_at,
                    extra={markers.SUSPENDED_KEYS: "/".join(keys)},
                )
                iam.tag_user(UserName=user, Tags=markers.as_list(tags))  # type: ignore[arg-type]
            iam.put_user_policy(UserName=user, PolicyName=policy, PolicyDocument=DENY_ALL)
            for key in keys:
                iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
        log.info("%s: suspended (keys %s, policy %s)", mutation.target, keys, policy)
        return mutations.UndoToken(action=NAME, data={**data, "keys": list(keys)})

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        iam = connecting.of(ctx.connection(connecting.PROVIDER)).iam()
        data = undo.data
        user = fields.text(data, "user", owner=NAME)
        run_id = fields.text(data, "runId", owner=NAME)
        policy = fields.text(data, "policy", owner=NAME)
        where = f"aws iam-user {user}"
        with wrapping.edge(where):
            try:
                tags = user_tags(iam, user)
                policies = iam.list_user_policies(UserName=user)["PolicyNames"]
            except wrapping.ClientError as exc:
                if wrapping.code(exc) == "NoSuchEntity":
                    log.warning("%s is gone; nothing to reinstate", where)
                    return
                raise
            marker = markers.read(tags)
            ours = marker is not None and marker.run_id == run_id
            if not ours and policy not in policies:
                log.info("%s carries no marker of run %s; nothing to undo", where, run_id)
                return
            keys = (
                markers.words(markers.join(tags, markers.SUSPENDED_KEYS))
                if ours
                else fields.texts(data, "keys", owner=NAME)
            )
            reinstate(iam, user=user, keys=keys, policy=policy)
        log.info("%s: reinstated (keys %s)", where, keys)
