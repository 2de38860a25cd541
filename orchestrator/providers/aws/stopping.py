"""Stopping: `aws.ec2.stop-instances`, and starting again exactly the ones it stopped.

Invariants:
- Only instances carrying the opt-in tag `stormdrill:allow=true` are ever stopped (as
  AWS FIS requires); the resolver excludes the rest, and `plan` refuses them again.
- Only instances running at plan time get a mutation; `apply` tags the instance
  (`stormdrill:run-id`, `stormdrill:expires-at`, `stormdrill:undo={"start":true}`)
  before stopping it, and `revert` starts only instances carrying this run's marker,
  then removes the marker: an instance someone else stopped is never started by us.
- An instance still `stopping` cannot be started yet: revert raises `ProviderRetryable`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

log = logging.getLogger(__name__)

NAME = "aws.ec2.stop-instances"
UNDO_VALUE = markers.dumps({"start": True})


class StopParams(pydantic.BaseModel):
    """`force`: stop without letting the OS shut down cleanly (as a hard failure would)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    force: bool = False


def describe(ec2: EC2Client, instance_id: str) -> InstanceTypeDef | None:
    """The instance, or None when AWS no longer knows it."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == "InvalidInstanceID.NotFound":
            return None
        raise
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            return instance
    return None


def start_marked(ec2: EC2Client, instance: InstanceTypeDef) -> str:
    """Start a marked instance if it is stopped and remove its markers; what happened."""
    instance_id = instance["InstanceId"]
    state = instance.get("State", {}).get("Name", "")
    tags = markers.as_dict(instance.get("Tags"))
    if state == "stopping":
        raise errors.ProviderRetryable(
            f"aws instance {instance_id}: still stopping; it can be started once stopped",
            delay=5.0,
        )
    outcome = f"was {state}; left as is"
    if state == "stopped":
        ec2.start_instances(InstanceIds=[instance_id])
        outcome = "started"
    ec2.delete_tags(
        Resources=[instance_id], Tags=[{"Key": k} for k in markers.stormdrill_keys(tags)]
    )
    return outcome


class StopInstances(registry.Action[StopParams]):
    """Stop running, opted-in EC2 instances; undo starts exactly those."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = StopParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"instance"})
    description: ClassVar[str] = (
        "Stop EC2 instances (opt-in tag stormdrill:allow=true required); undo starts exactly "
        "the instances that were running."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: StopParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        ec2 = conn.ec2()
        planned: list[mutations.PlannedMutation] = []
        for target in targets:
            with wrapping.edge(target):
                instance = describe(ec2, target.name)
            if instance is None:
                raise errors.ProviderPermanent(f"{target}: no such instance in {conn.region}")
            tags = markers.as_dict(instance.get("Tags"))
            if tags.get(markers.OPT_IN) != "true":
                raise errors.ProviderPermanent(
                    f"{target}: not opted in to drills; tag it {markers.OPT_IN}=true to allow "
                    "stopping it"
                )
            state = instance.get("State", {}).get("Name", "")
            if state != "running":
                log.info("%s is %s, not running: nothing to stop", target, state)
                continue
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(),
                    pre_state={"state": state, "zone": instance["Placement"]["AvailabilityZone"]},
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "region": conn.region,
                            "instanceId": target.name,
                        },
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        ec2 = connecting.of(ctx.connection(connecting.PROVIDER)).ec2()
        instance_id = fields.text(mutation.undo.data, "instanceId", owner=NAME)
        force = bool(mutation.params.get("force", False))
        with wrapping.edge(mutation.target):
            instance = describe(ec2, instance_id)
            state = (instance or {}).get("State", {}).get("Name", "")
            if state != "running":
                log.info("%s is %s at apply time: not stopping it", mutation.target, state)
                return None
            tags = markers.fault_tags(run_id=str(ctx.run_id), expires_at=ctx.expires_at)
            tags[markers.UNDO] = UNDO_VALUE
            ec2.create_tags(Resources=[instance_id], Tags=markers.as_list(tags))  # type: ignore[arg-type]
            ec2.stop_instances(InstanceIds=[instance_id], Force=force)
        log.info("%s stopped", mutation.target)
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        ec2 = connecting.of(ctx.connection(connecting.PROVIDER)).ec2()
        instance_id = fields.text(undo.data, "instanceId", owner=NAME)
        run_id = fields.text(undo.data, "runId", owner=NAME)
        where = f"aws instance {instance_id}"
        with wrapping.edge(where):
            instance = describe(ec2, instance_id)
            if instance is None:
                log.warning("%s is gone (terminated?); nothing to start", where)
                return
            marker = markers.read(markers.as_dict(instance.get("Tags")))
            if marker is None or marker.run_id != run_id:
                log.info("%s carries no marker of run %s; nothing to undo", where, run_id)
                return
            log.info("%s: %s", where, start_marked(ec2, instance))
