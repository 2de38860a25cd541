"""Route 53: `aws.route53.fail-health-check`, inverting health checks so DNS fails over.

Invariants:
- One mutation per selected health check that is not inverted yet; a check already
  inverted (by a person) is left alone and logged, and one carrying another run's marker is
  refused at plan time.
- `apply` writes the markers on the health check first (`ChangeTagsForResource`:
  `stormdrill:run-id`, `stormdrill:expires-at`, `stormdrill:previous-inverted`), then sets
  `UpdateHealthCheck(Inverted=true)`; a marker present means "maybe inverted", absent means
  "ours is undone (or never happened)". Applying again finds its own marker and is harmless.
- `revert` acts only on a check carrying this run's marker: it sets `Inverted` back to the
  recorded previous value while the check is still inverted (an update conditional on the
  `HealthCheckVersion` it read), leaves a check someone else changed meanwhile alone and
  reports it, then removes the markers. Undoing twice, or undoing what never happened,
  changes nothing.
- A health check's own state (`healthy`) is its checkers' majority (more than 18% report
  success, as Route 53 counts), always healthy when `Disabled`, then inverted when
  `Inverted`: the state failover routing acts on.
- The Route 53 API is global; the client of the run's region serves it. boto3 ships no
  typed stubs for it here, so answers are read into frozen dataclasses at this edge.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import pydantic

from orchestrator import errors, mutations, registry
from orchestrator.providers.aws import connecting, fields, markers, wrapping

log = logging.getLogger(__name__)

NAME: Final = "aws.route53.fail-health-check"
KIND: Final = "health-check"
RESOURCE_TYPE: Final = "healthcheck"
PREVIOUS_INVERTED: Final = "stormdrill:previous-inverted"
HEALTHY_SHARE: Final = 0.18
"""Route 53 calls an endpoint healthy when more than this share of its checkers say so."""
_NOT_FOUND: Final = "NoSuchHealthCheck"
_VERSION_MISMATCH: Final = "HealthCheckVersionMismatch"
_TAGS_PER_CALL: Final = 10


def client(conn: connecting.AwsConnection) -> Any:
    """The run's Route 53 client (shared, configured like every other client of `conn`)."""
    return conn.route53()


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """A Route 53 health check as this provider reads it."""

    id: str
    inverted: bool
    disabled: bool
    version: int
    type: str
    tags: Mapping[str, str]


def _check(raw: Mapping[str, Any], tags: Mapping[str, str]) -> HealthCheck:
    config = raw.get("HealthCheckConfig", {})
    return HealthCheck(
        id=str(raw["Id"]),
        inverted=bool(config.get("Inverted", False)),
        disabled=bool(config.get("Disabled", False)),
        version=int(raw.get("HealthCheckVersion", 1)),
        type=str(config.get("Type", "")),
        tags=dict(tags),
    )


def _tags(r53: Any, check_id: str) -> dict[str, str]:
    answer = r53.list_tags_for_resource(ResourceType=RESOURCE_TYPE, ResourceId=check_id)
    return markers.as_dict(answer.get("ResourceTagSet", {}).get("Tags"))


def describe(r53: Any, check_id: str) -> HealthCheck | None:
    """The health check `check_id` with its tags, or None when Route 53 does not know it."""
    try:
        raw = r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]
    except wrapping.ClientError as exc:
        if wrapping.code(exc) == _NOT_FOUND:
            return None
        raise
    return _check(raw, _tags(r53, check_id))


def list_all(r53: Any) -> list[HealthCheck]:
    """Every health check of the account, with its tags (ListTagsForResources, 10 a call)."""
    raws: list[Mapping[str, Any]] = []
    for page in r53.get_paginator("list_health_checks").paginate():
        raws.extend(page.get("HealthChecks", []))
    ids = [str(raw["Id"]) for raw in raws]
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), _TAGS_PER_CALL):
        answer = r53.list_tags_for_resources(
            ResourceType=RESOURCE_TYPE, ResourceIds=ids[start : start + _TAGS_PER_CALL]
        )
        for tag_set in answer.get("ResourceTagSets", []):
            tags[str(tag_set["ResourceId"])] = markers.as_dict(tag_set.get("Tags"))
    return [_check(raw, tags.get(str(raw["Id"]), {})) for raw in raws]


def healthy(r53: Any, check: HealthCheck) -> bool:
    """Whether Route 53 considers `check` healthy now (checkers, Disabled, then Inverted)."""
    if check.disabled:
        raw_healthy = True
    else:
        answer = r53.get_health_check_status(HealthCheckId=check.id)
        statuses = [
            str(o.get("StatusReport", {}).get("Status", ""))
            for o in answer.get("HealthCheckObservations", [])
        ]
        successes = sum(1 for s in statuses if s.startswith("Success"))
        raw_healthy = not statuses or successes / len(statuses) > HEALTHY_SHARE
    return raw_healthy != check.inverted


def _previous(check: HealthCheck, fallback: bool) -> bool:
    raw = check.tags.get(PREVIOUS_INVERTED)
    return fallback if raw is None else raw == "true"


def restore(r53: Any, check: HealthCheck, *, previous: bool) -> str:
    """Set `Inverted` back to `previous` if the check is still as the drill left it, remove
    the markers; what happened, for a person (a check changed meanwhile is left alone)."""
    if check.inverted != previous:
        try:
            r53.update_health_check(
                HealthCheckId=check.id, Inverted=previous, HealthCheckVersion=check.version
            )
        except wrapping.ClientError as exc:
            if wrapping.code(exc) == _VERSION_MISMATCH:
                raise errors.ProviderRetryable(
                    f"aws health-check {check.id}: changed while being restored "
                    f"(version {check.version} is stale); re-reading it on the next attempt",
                    delay=1.0,
                ) from exc
            raise
        outcome = f"Inverted set back to {str(previous).lower()}"
    else:
        outcome = (
            f"Inverted is already {str(previous).lower()} (someone else changed it during the "
            "drill, or the drill stopped before inverting it); left alone"
        )
        log.warning("undoing %s on health check %s: %s", NAME, check.id, outcome)
    keys = markers.stormdrill_keys(check.tags)
    if keys:
        r53.change_tags_for_resource(
            ResourceType=RESOURCE_TYPE, ResourceId=check.id, RemoveTagKeys=keys
        )
    return outcome


class FailParams(pydantic.BaseModel):
    """No parameters: the selected health checks are inverted (reported unhealthy)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class FailHealthCheck(registry.Action[FailParams]):
    """Invert Route 53 health checks, so failover routing moves to the secondary."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = FailParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({KIND})
    description: ClassVar[str] = (
        "Fail Route 53 health checks: set Inverted=true so a healthy endpoint is reported "
        "unhealthy and DNS failover routes to the secondary; undo sets Inverted back."
    )
    destructive: ClassVar[bool] = True

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: FailParams,
    ) -> list[mutations.PlannedMutation]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        r53 = client(conn)
        planned: list[mutations.PlannedMutation] = []
        for target in targets:
            with wrapping.edge(target):
                check = describe(r53, target.name)
            if check is None:
                raise errors.ProviderPermanent(f"{target}: no such Route 53 health check")
            marker = markers.read(check.tags)
            if marker is not None and marker.run_id != str(ctx.run_id):
                raise errors.ProviderPermanent(
                    f"{target}: already failed by run {marker.run_id}; undo that run first "
                    "(`stormdrill recover`)"
                )
            if check.inverted and marker is None:
                log.info("%s is already inverted: nothing to fail", target)
                continue
            planned.append(
                mutations.PlannedMutation(
                    step=NAME,
                    target=target,
                    action=NAME,
                    params=params.model_dump(),
                    pre_state={
                        "inverted": False,
                        "disabled": check.disabled,
                        "version": check.version,
                    },
                    undo=mutations.UndoToken(
                        action=NAME,
                        data={
                            "runId": str(ctx.run_id),
                            "healthCheckId": check.id,
                            "previousInverted": False,
                        },
                    ),
                )
            )
        return planned

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        r53 = client(connecting.of(ctx.connection(connecting.PROVIDER)))
        data = mutation.undo.data
        check_id = fields.text(data, "healthCheckId", owner=NAME)
        with wrapping.edge(mutation.target):
            check = describe(r53, check_id)
            if check is None:
                raise errors.ProviderPermanent(f"{mutation.target}: health check is gone")
            marker = markers.read(check.tags)
            if marker is not None and marker.run_id != str(ctx.run_id):
                raise errors.ProviderPermanent(
                    f"{mutation.target}: failed by run {marker.run_id} meanwhile; not touching it"
                )
            if marker is None:
                if check.inverted:
                    log.info("%s was inverted by someone else: not touching it", mutation.target)
                    return None
                previous = False
                tags = markers.fault_tags(
                    run_id=str(ctx.run_id),
                    expires_at=ctx.expires_at,
                    extra={PREVIOUS_INVERTED: "false"},
                )
                r53.change_tags_for_resource(
                    ResourceType=RESOURCE_TYPE, ResourceId=check_id, AddTags=markers.as_list(tags)
                )
            else:
                previous = _previous(check, False)
            if not check.inverted:
                r53.update_health_check(
                    HealthCheckId=check_id, Inverted=True, HealthCheckVersion=check.version
                )
        log.info("%s: health check inverted (reported unhealthy)", mutation.target)
        return mutations.UndoToken(action=NAME, data={**data, "previousInverted": previous})

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        r53 = client(connecting.of(ctx.connection(connecting.PROVIDER)))
        check_id = fields.text(undo.data, "healthCheckId", owner=NAME)
        run_id = fields.text(undo.data, "runId", owner=NAME)
        fallback = undo.data.get("previousInverted") is True
        where = f"aws {KIND} {check_id}"
        with wrapping.edge(where):
            check = describe(r53, check_id)
            if check is None:
                log.warning("%s is gone; nothing to undo", where)
                return
            marker = markers.read(check.tags)
            if marker is None or marker.run_id != run_id:
                log.info("%s carries no marker of run %s; nothing to undo", where, run_id)
                return
            outcome = restore(r53, check, previous=_previous(check, fallback))
        log.info("%s: %s", where, outcome)


class Route53Sweeper(registry.Sweeper):
    """Heals health checks a dead run left inverted, from their markers alone."""

    provider: ClassVar[str] = connecting.PROVIDER

    def sweep(
        self,
        ctx: registry.ProviderContext,
        *,
        is_orphan: Callable[[str, datetime], bool],
        dry_run: bool,
    ) -> list[registry.SweepFinding]:
        conn = connecting.of(ctx.connection(connecting.PROVIDER))
        r53 = client(conn)
        with wrapping.edge("aws sweep of Route 53 health checks"):
            marked = [
                (check, marker)
                for check in list_all(r53)
                if (marker := markers.read(check.tags)) is not None
            ]
        now = datetime.now(UTC)
        findings: list[registry.SweepFinding] = []
        for check, marker in marked:
            target = mutations.TargetRef(
                provider=connecting.PROVIDER, kind=KIND, name=check.id, region=conn.region
            )
            healed = False
            if not is_orphan(marker.run_id, marker.expires_at):
                message = "run still alive; left alone"
            elif dry_run:
                message = "orphaned; would heal (dry run)"
            else:
                try:
                    with wrapping.edge(target):
                        message = restore(r53, check, previous=_previous(check, False))
                    healed = True
                except errors.ProviderError as exc:
                    message = f"could not heal: {exc}"
                    log.warning("sweep: %s of run %s: %s", target, marker.run_id, message)
            findings.append(
                registry.SweepFinding(
                    target=target,
                    run_id=marker.run_id,
                    expired=marker.expired(now),
                    healed=healed,
                    message=message,
                )
            )
        return findings
