"""Scaling: `aws.autoscaling.remove-zone`, taking a zone's subnets out of an ASG.

Invariants:
- The group is tagged before it changes: `stormdrill:run-id`, `stormdrill:expires-at`,
  `stormdrill:previous-subnets` (the exact previous `VPCZoneIdentifier`, `/`-separated,
  split if long) and `stormdrill:suspended-processes` (only the processes this run
  suspended, not those already suspended).
- Undo, gated on this run's marker: restore the exact previous subnet list (if someone
  changed the list meanwhile, add back only the subnets we removed and report it), resume
  only the processes this run suspended, then remove the marker tags.
- A zone removal that would leave the group with no subnet is refused at plan time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import pydantic
from pydantic import alias_generators

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef
    from mypy_boto3_ec2 import EC2Client

log = logging.getLogger(__name__)

NAME = "aws.autoscaling.remove-zone"

Process = Literal[
    "AZRebalance",
    "Launch",
    "Terminate",
    "HealthCheck",
    "ReplaceUnhealthy",
    "AlarmNotification",
    "ScheduledActions",
    "AddToLoadBalancer",
    "InstanceRefresh",
]


class RemoveZoneParams(pydantic.BaseModel):
    """`zone` to remove; `suspendProcesses` (e.g. AZRebalance, Launch) to suspend meanwhile."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    zone: str
    suspend_processes: tuple[Process, ...] = ()


def describe(asg: AutoScalingClient, name: str) -> AutoScalingGroupTypeDef | None:
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def split_subnets(raw: str) -> list[str]:
    return [s.strip() for s in raw.split(",") if s.strip()]


def _zone_subnets(ec2: EC2Client, subnets: Sequence[str], zone: str) -> list[str]:
    if not subnets:
        return []
    found = ec2.describe_subnets(SubnetIds=list(subnets))["Subnets"]
    return [s["SubnetId"] for s in found if s["AvailabilityZone"] == zone]


def tag_list(group: str, tags: dict[str, str]) -> list[dict[str, object]]:
    return [
        {
            "ResourceId": group,
            "ResourceType": "auto-scaling-group",
            "Key": key,
            "Value": value,
            "PropagateAtLaunch": False,
        }
        for key, value in tags.items()
    ]


def restore_group(
    asg: AutoScalingClient,
    group: AutoScalingGroupTypeDef,
    *,
    previous: str,
    removed: Sequence[str],
    resume: Sequence[str],
) -> list[str]:
    """Put the subnet list and processes back, then drop the markers; notes for a person."""
    name = group["AutoScalingGroupName"]
    notes: list[str] = []
    current = split_subnets(group.get("VPCZoneIdentifier", ""))
    expected = [s for s in split_subnets(previous) if s not in removed]
    if current == split_subnets(previous):
        pass
    elif sorted(current) == sorted(expected):
        asg.update_auto_scaling_group(AutoScalingGroupName=name, VPCZoneIdentifier=previous)
    else:
        merged = current + [s for s in removed if s not in current]
        notes.append(
            f"subnets changed during the drill (now {','.join(current)}); added back only "
            f"{','.join(removed)}"
        )
        asg.update_auto_scaling_group(AutoScalingGroupName=name, VPCZoneIdentifier=",".join(merged))
    if resume:
        asg.resume_processes(AutoScalingGroupName=name, ScalingProcesses=list(resume))
    keys = markers.stormdrill_keys(markers.as_dict(group.get("Tags")))
    if keys:
        asg.delete_tags(
            Tags=[
                {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key}
                for key in keys
            ]
        )
    for note in notes:
        log.warning("undoing zone removal on %s: %s", name, note)
    return notes


class RemoveZone(registry.Action[RemoveZoneParams]):
    """Take one zone's subnets out of an Auto Scaling group."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = RemoveZoneParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"autoscaling-group"})
    description: ClassVar[str] = (
        "Remove a zone's subnets from an Auto Scaling group's VPCZoneIdentifier (optionally "
        "suspending AZRebalance/Launch); undo restores the exact previous list and processes."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: RemoveZoneParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        planned: list[mutations.PlannedMutation] = []
        for target in targets:
            with wrapping.edge(target):
                group = describe(conn.autoscaling(), target.name)
                if group is None:
                    raise errors.ProviderPermanent(f"{target}: no such Auto Scaling group")
                previous = group.get("VPCZoneIdentifier", "")
                subnets = split_subnets(previous)
                removed = _zone_subnets(conn.ec2(), subnets, params.zone)
            marker = markers.read(markers.as_dict(group.get("Tags")))
            if marker is not None:
                raise errors.ProviderPermanent(
                    f"{target}: already changed by run {marker.run_id}; undo that run first "
                    "(`stormdrill recover`)"
                )
            if not removed:
                log.info("%s has no subnet in %s: nothing to remove", target, params.zone)
                continue
            if len(removed) == len(subnets):
                raise errors.ProviderPermanent(
                    f"{target}: every subnet is in {params.zone}; removing the zone would leave "
                    "the group nowhere to run (pick a multi-zone group)"
                )
            already = {p["ProcessName"] for p in group.get("SuspendedProcesses", [])}
            suspend = [p for p in params.suspend_processes if p not in already]
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(by_alias=True),
                    pre_state={
                        "vpcZoneIdentifier": previous,
                        "suspendedProcesses": sorted(already),
                    },
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "region": conn.region,
                            "group": target.name,
                            "previous": previous,
                            "removed": removed,
                            "suspended": suspend,
                        },
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        asg = connecting.of(ctx.connection(connecting.PROVIDER)).autoscaling()
        data = mutation.undo.data
        name = fields.text(data, "group", owner=NAME)
        previous = fields.text(data, "previous", owner=NAME)
        removed = fields.texts(data, "removed", owner=NAME)
        suspend = fields.texts(data, "suspended", owner=NAME)
        with wrapping.edge(mutation.target):
            tags = markers.fault_tags(
                run_id=str(ctx.run_id),
                expires_at=ctx.expires_at,
                extra={
                    markers.PREVIOUS_SUBNETS: "/".join(split_subnets(previous)),
                    markers.SUSPENDED_PROCESSES: "/".join(suspend),
                },
            )
            asg.create_or_update_tags(Tags=tag_list(name, tags))  # type: ignore[arg-type]
            if suspend:
                asg.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=suspend)
            remaining = [s for s in split_subnets(previous) if s not in removed]
            asg.update_auto_scaling_group(
                AutoScalingGroupName=name, VPCZoneIdentifier=",".join(remaining)
            )
        log.info("%s: removed subnets %s, suspended %s", mutation.target, removed, suspend)
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        asg = connecting.of(ctx.connection(connecting.PROVIDER)).autoscaling()
        data = undo.data
        name = fields.text(data, "group", owner=NAME)
        run_id = fields.text(data, "runId", owner=NAME)
        where = f"aws autoscaling-group {name}"
        with wrapping.edge(where):
            group = describe(asg, name)
            if group is None:
                log.warning("%s is gone; nothing to undo", where)
                return
            tags = markers.as_dict(group.get("Tags"))
            marker = markers.read(tags)
            if marker is None or marker.run_id != run_id:
                log.info("%s carries no marker of run %s; nothing to undo", where, run_id)
                return
            restore_group(
                asg,
                group,
                previous=fields.text(data, "previous", owner=NAME),
                removed=fields.texts(data, "removed", owner=NAME),
                resume=markers.words(markers.join(tags, markers.SUSPENDED_PROCESSES)),
            )


def heal_from_tags(asg: AutoScalingClient, group: AutoScalingGroupTypeDef) -> list[str]:
    """Undo a marked group using only its tags (the sweeper's way)."""
    tags = markers.as_dict(group.get("Tags"))
    previous = markers.words(markers.join(tags, markers.PREVIOUS_SUBNETS))
    current = split_subnets(group.get("VPCZoneIdentifier", ""))
    removed = [s for s in previous if s not in current]
    return restore_group(
        asg,
        group,
        previous=",".join(previous) if previous else group.get("VPCZoneIdentifier", ""),
        removed=removed,
        resume=markers.words(markers.join(tags, markers.SUSPENDED_PROCESSES)),
    )
