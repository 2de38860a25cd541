"""Planning: resolve targets once, plan every mutation, map to CMDB services, judge guardrails.

Invariants:
- Planning only reads: providers resolve selectors and plan mutations with their undo
  tokens, and nothing in the world changes (a test proves it against the sandbox).
- Targets are resolved exactly once; the frozen selections are what the run touches.
- A plan carries every guardrail verdict; a plan with a refusal must not be run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

from orchestrator import context, errors, guardrails, mutations, registry, targets
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from scenarios import models

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DrillInput:
    """A scenario bound to an environment and parameter values: what to plan and run."""

    scenario: models.Scenario
    scenario_source: str
    environment: models.Environment
    environment_source: str
    parameters: Mapping[str, mutations.JsonValue]
    approvals: tuple[str, ...] = ()
    drill: str | None = None

    @property
    def time_scale(self) -> float:
        return self.environment.spec.time_scale


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """One step of the scenario and, for action steps, the mutations it would make now."""

    index: int
    step: models.Step
    mutations: tuple[mutations.PlannedMutation, ...] = ()
    selection: str | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a run would do, decided before anything is touched."""

    drill: DrillInput
    selections: Mapping[str, targets.Selection]
    steps: tuple[StepPlan, ...]
    impact: cmdb_impact.Impact | None
    verdicts: tuple[guardrails.GuardrailVerdict, ...]

    @property
    def refusals(self) -> list[guardrails.GuardrailVerdict]:
        return [verdict for verdict in self.verdicts if not verdict.ok]

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    def target_keys(self) -> list[str]:
        """Every target key the run would touch (for the one-drill-per-target lock)."""
        return sorted({ref.key for sel in self.selections.values() for ref in sel.refs})

    def rollback_plan(self) -> list[mutations.PlannedMutation]:
        """What rollback would undo if every planned mutation were applied, newest first."""
        planned = [m for step in self.steps for m in step.mutations]
        return list(reversed(planned))


OptedIn = Callable[[Sequence[str]], Sequence[str]]
"""Given namespaces, the ones opted in to drills (supplied by the Kubernetes provider)."""


def make_plan(
    *,
    drill: DrillInput,
    reg: registry.Registry,
    ctx: context.RunContext,
    catalog: cmdb_models.Catalog | None,
    facts: guardrails.RuntimeFacts,
) -> Plan:
    """Resolve, plan and judge `drill`; provider errors mean the world is unreachable."""
    selections = resolve_targets(drill.scenario, reg=reg, ctx=ctx)
    steps = plan_steps(drill.scenario, reg=reg, ctx=ctx, selections=selections)
    impacted = map_impact(drill.scenario, selections=selections, catalog=catalog)
    verdicts = guardrails.evaluate_plan(
        guardrails.PlanFacts(
            scenario=drill.scenario,
            environment=drill.environment,
            approvals=drill.approvals,
            selections=selections,
            destructive_targets=_destructive_targets(drill.scenario, reg),
            impacted=impacted.services if impacted is not None else (),
            runtime=facts,
        )
    )
    return Plan(
        drill=drill,
        selections=selections,
        steps=steps,
        impact=impacted,
        verdicts=tuple(verdicts),
    )


def resolve_targets(
    scenario: models.Scenario, *, reg: registry.Registry, ctx: context.RunContext
) -> dict[str, targets.Selection]:
    """Resolve every named target once."""
    resolved: dict[str, targets.Selection] = {}
    for name, target in scenario.spec.targets.items():
        resolver = reg.resolver(provider=target.provider.value, kind=target.kind)
        resolved[name] = resolver.resolve(ctx, name=name, target=target)
        log.info(
            "target %s resolved to %d of %d %s",
            name,
            resolved[name].count,
            resolved[name].population,
            target.kind,
        )
    return resolved


def plan_steps(
    scenario: models.Scenario,
    *,
    reg: registry.Registry,
    ctx: context.RunContext,
    selections: Mapping[str, targets.Selection],
) -> tuple[StepPlan, ...]:
    """Each step with the mutations its action would make against the frozen selections."""
    planned: list[StepPlan] = []
    for index, step in enumerate(scenario.spec.steps):
        if step.action is None:
            planned.append(StepPlan(index=index, step=step))
            continue
        planned.append(
            StepPlan(
                index=index,
                step=step,
                mutations=tuple(plan_action(step, reg=reg, ctx=ctx, selections=selections)),
                selection=step.target,
            )
        )
    return tuple(planned)


def plan_action(
    step: models.Step,
    *,
    reg: registry.Registry,
    ctx: registry.ProviderContext,
    selections: Mapping[str, targets.Selection],
) -> list[mutations.PlannedMutation]:
    """The mutations of one action step, planned now (fresh pre-state, frozen targets)."""
    assert step.action is not None
    action = reg.get_action(step.action)()
    refs: tuple[mutations.TargetRef, ...] = ()
    if step.target is not None:
        selection = selections.get(step.target)
        if selection is None:
            raise errors.OrchestratorError(f"step {step.name}: target {step.target!r} is unknown")
        refs = selection.refs
    params = action.parse_params(dict(step.params))
    found = action.plan(ctx, targets=refs, params=params)
    return [dataclasses.replace(m, step=step.name) for m in found]


def map_impact(
    scenario: models.Scenario,
    *,
    selections: Mapping[str, targets.Selection],
    catalog: cmdb_models.Catalog | None,
) -> cmdb_impact.Impact | None:
    """The CMDB services the selections (and the scenario's refs) touch, with dependents."""
    if catalog is None:
        return None
    touched: dict[str, cmdb_models.EntityRef] = {}
    for raw in scenario.spec.services:
        try:
            ref = catalog.lookup(raw)
        except cmdb_errors.CmdbError as exc:
            log.warning("scenario service %s is not in the CMDB: %s", raw, exc)
            continue
        touched[str(ref)] = ref
    for selection in selections.values():
        for hint in selection.hints:
            for service in services_for_hint(catalog, hint):
                touched[str(service.ref)] = service.ref
    return cmdb_impact.impact(catalog, list(touched.values()))


def services_for_hint(
    catalog: cmdb_models.Catalog, hint: targets.ServiceHint
) -> list[cmdb_models.Service]:
    """The catalog services a provider's hint points at."""
    if hint.provider == "kubernetes" and hint.namespace is not None:
        return list(
            cmdb_impact.services_for_kubernetes(
                catalog, namespace=hint.namespace, labels=dict(hint.labels)
            )
        )
    if hint.provider == "aws":
        ids = tuple(_aws_ids(hint.resource_ids))
        return list(
            cmdb_impact.services_for_aws(
                catalog, tags=dict(hint.tags) or None, resource_ids=ids, zone=hint.zone
            )
        )
    return []


def _aws_ids(raw_ids: Sequence[str]) -> list[cmdb_models.AwsResourceId]:
    found: list[cmdb_models.AwsResourceId] = []
    for raw in raw_ids:
        try:
            found.append(cmdb_models.AwsResourceId.parse(raw))
        except ValueError:
            log.debug("resource id %s has no CMDB type; not mapped to a service", raw)
    return found


def _destructive_targets(scenario: models.Scenario, reg: registry.Registry) -> frozenset[str]:
    names: set[str] = set()
    for step in scenario.spec.steps:
        if step.action is None or step.target is None:
            continue
        try:
            action = reg.get_action(step.action)
        except errors.UnknownAction:
            continue
        if action.destructive:
            names.add(step.target)
    return frozenset(names)
