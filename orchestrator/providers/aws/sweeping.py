"""Sweeping: find AWS faults by their `stormdrill:*` tags and heal those of dead runs.

Invariants:
- Needs no journal: every fault this provider leaves carries its own undo in tags
  (blocking network ACLs, stopped instances, security groups, Auto Scaling groups, IAM
  users with a `stormdrill-suspended-*` policy).
- A marker is healed only when `is_orphan(run_id, expires_at)` says so, and only when
  `dry_run` is false; every marker found is reported either way.
- One resource failing to heal is reported and the sweep goes on with the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import (
    connecting,
    egress,
    isolating,
    markers,
    scaling,
    stopping,
    suspending,
    wrapping,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import NetworkAclTypeDef

log = logging.getLogger(__name__)

Heal = Callable[[], str]


class AwsSweeper(registry.Sweeper):
    """Heals orphaned AWS faults from their tags alone."""

    provider: ClassVar[str] = connecting.PROVIDER

    def sweep(
        self,
        ctx: registry.ProviderContext,
        *,
        is_orphan: Callable[[str, datetime], bool],
        dry_run: bool,
    ) -> list[registry.SweepFinding]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        with wrapping.edge(f"aws sweep in {conn.region}"):
            found += self._acls(conn)
            found += self._instances(conn)
            found += self._security_groups(conn)
            found += self._groups(conn)
            found += self._users(conn)
        now = datetime.now(UTC)
        findings: list[registry.SweepFinding] = []
        for target, marker, heal in found:
            expired = marker.expired(now)
            healed = False
            if not is_orphan(marker.run_id, marker.expires_at):
                message = "run still alive; left alone"
            elif dry_run:
                message = "orphaned; would heal (dry run)"
            else:
                try:
                    with wrapping.edge(target):
                        message = heal()
                    healed = True
                except errors.ProviderError as exc:
                    message = f"could not heal: {exc}"
                    log.warning("sweep: %s of run %s: %s", target, marker.run_id, message)
            findings.append(
                registry.SweepFinding(
                    target=target,
                    run_id=marker.run_id,
                    expired=expired,
                    healed=healed,
                    message=message,
                )
            )
        return findings

    @staticmethod
    def _ref(conn: connecting.AwsConnection, kind: str, name: str) -> mutations.TargetRef:
        return mutations.TargetRef(
            provider=connecting.PROVIDER, kind=kind, name=name, region=conn.region
        )

    def _acls(
        self, conn: connecting.AwsConnection
    ) -> list[tuple[mutations.TargetRef, markers.Marker, Heal]]:
        ec2 = conn.ec2()
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        pages = ec2.get_paginator("describe_network_acls").paginate(
            Filters=[{"Name": "tag-key", "Values": [markers.RUN_ID]}]
        )
        for page in pages:
            for acl in page["NetworkAcls"]:
                marker = markers.read(markers.as_dict(acl.get("Tags")))
                if marker is None:
                    continue

                def heal(acl: NetworkAclTypeDef = acl) -> str:
                    notes = isolating.restore(ec2, acl, fallback={})
                    return "; ".join(["associations restored, blocking ACL deleted", *notes])

                found.append((self._ref(conn, "network-acl", acl["NetworkAclId"]), marker, heal))
        return found

    def _instances(
        self, conn: connecting.AwsConnection
    ) -> list[tuple[mutations.TargetRef, markers.Marker, Heal]]:
        ec2 = conn.ec2()
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag-key", "Values": [markers.RUN_ID]}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation.get("Instances", []):
                    tags = markers.as_dict(instance.get("Tags"))
                    marker = markers.read(tags)
                    if marker is None or tags.get(markers.UNDO) != stopping.UNDO_VALUE:
                        continue
                    instance_id = instance["InstanceId"]

                    def heal(instance_id: str = instance_id) -> str:
                        current = stopping.describe(ec2, instance_id)
                        if current is None:
                            return "instance is gone"
                        return stopping.start_marked(ec2, current)

                    found.append((self._ref(conn, "instance", instance_id), marker, heal))
        return found

    def _security_groups(
        self, conn: connecting.AwsConnection
    ) -> list[tuple[mutations.TargetRef, markers.Marker, Heal]]:
        ec2 = conn.ec2()
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        pages = ec2.get_paginator("describe_security_groups").paginate(
            Filters=[{"Name": "tag-key", "Values": [markers.RUN_ID]}]
        )
        for page in pages:
            for group in page["SecurityGroups"]:
                marker = markers.read(markers.as_dict(group.get("Tags")))
                if marker is None:
                    continue
                group_id = group["GroupId"]

                def heal(group_id: str = group_id) -> str:
                    current = egress.describe(ec2, group_id)
                    if current is None:
                        return "security group is gone"
                    rules = egress.rules_from_tags(current) or []
                    egress.reauthorize(ec2, current, rules)
                    return f"re-authorised {'; '.join(map(str, rules)) or 'nothing'}"

                found.append((self._ref(conn, "security-group", group_id), marker, heal))
        return found

    def _groups(
        self, conn: connecting.AwsConnection
    ) -> list[tuple[mutations.TargetRef, markers.Marker, Heal]]:
        asg = conn.autoscaling()
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        for page in asg.get_paginator("describe_auto_scaling_groups").paginate():
            for group in page["AutoScalingGroups"]:
                marker = markers.read(markers.as_dict(group.get("Tags")))
                if marker is None:
                    continue
                name = group["AutoScalingGroupName"]

                def heal(name: str = name) -> str:
                    current = scaling.describe(asg, name)
                    if current is None:
                        return "Auto Scaling group is gone"
                    notes = scaling.heal_from_tags(asg, current)
                    return "; ".join(["subnets and processes restored", *notes])

                found.append((self._ref(conn, "autoscaling-group", name), marker, heal))
        return found

    def _users(
        self, conn: connecting.AwsConnection
    ) -> list[tuple[mutations.TargetRef, markers.Marker, Heal]]:
        iam = conn.iam()
        found: list[tuple[mutations.TargetRef, markers.Marker, Heal]] = []
        for page in iam.get_paginator("list_users").paginate():
            for user in page["Users"]:
                name = user["UserName"]
                policies = [
                    p
                    for p in iam.list_user_policies(UserName=name)["PolicyNames"]
                    if p.startswith(markers.SUSPENDED_POLICY_PREFIX)
                ]
                tags = suspending.user_tags(iam, name)
                marker = markers.read(tags)
                if not policies and marker is None:
                    continue
                if marker is None:
                    # The tags were lost: the run is named by the policy, expiry unknown.
                    run_id = policies[0].removeprefix(markers.SUSPENDED_POLICY_PREFIX)
                    marker = markers.Marker(run_id, datetime.min.replace(tzinfo=UTC))
                keys = markers.words(markers.join(tags, markers.SUSPENDED_KEYS))

                def heal(
                    name: str = name,
                    policies: list[str] = policies,
                    keys: list[str] = keys,
                    run_id: str = marker.run_id,
                ) -> str:
                    notes: list[str] = []
                    for policy in policies or [markers.policy_name(run_id)]:
                        notes += suspending.reinstate(iam, user=name, keys=keys, policy=policy)
                    return "; ".join([f"re-activated {', '.join(keys) or 'no keys'}", *notes])

                found.append((self._ref(conn, "iam-user", name), marker, heal))
        return found
