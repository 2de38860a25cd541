"""Planning: resolve targets once, plan every mutation, map to CMDB services, judge guardrails.

Invariants:
- Planning only reads: providers resolve selectors and plan mutations with their undo
  tokens, and nothing in the world changes (a test proves it against the sandbox).
- Targets are resolved exactly once; the frozen selections are what the run touches.
- A plan carries every guardrail verdict; a plan with a refusal must not be run.
- Guardrails judge the planned mutations themselves (the bindings a revoke edits, the pods a
  drain evicts), and the judged plan's Kubernetes scope is frozen on its selections
  (`Selection.approved`): the re-plan of a step at run time that would reach another
  namespace or cluster-wide object stops the step (`GuardrailTripped`) instead.
- A selection narrowed to `namespaces` keeps only its mutations inside them (on purpose).
- A planning pass (`make_plan`, `resolve_targets`, `plan_action`) runs with CPython's
  cyclic garbage collector paused (`collector_paused`): it builds big acyclic trees (parsed
  list pages, facts, pre-states) that reference counting frees, which the collector would
  only scan, with the whole heap, again and again. It runs again when the pass ends,
  however it ends.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence

from orchestrator import collector, context, errors, guardrails, mutations, registry, targets
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


collector_paused = collector.paused
"""`with collector_paused():` runs its body with the cyclic garbage collector paused."""


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
    with collector_paused():
        return _make_plan(drill=drill, reg=reg, ctx=ctx, catalog=catalog, facts=facts)


def _make_plan(
    *,
    drill: DrillInput,
    reg: registry.Registry,
    ctx: context.RunContext,
    catalog: cmdb_models.Catalog | None,
    facts: guardrails.RuntimeFacts,
) -> Plan:
    selections = _resolve_targets(drill.scenario, reg=reg, ctx=ctx)
    steps = plan_steps(drill.scenario, reg=reg, ctx=ctx, selections=selections)
    planned = tuple(m for step in steps for m in step.mutations)
    impacted = map_impact(drill.scenario, selections=selections, catalog=catalog, planned=planned)
    verdicts = guardrails.evaluate_plan(
        guardrails.PlanFacts(
            scenario=drill.scenario,
            environment=drill.environment,
            approvals=drill.approvals,
            selections=selections,
            destructive_targets=_destructive_targets(drill.scenario, reg),
            impacted=impacted.services if impacted is not None else (),
            runtime=facts,
            planned=planned,
            break_glass=break_glass_holders(catalog),
        )
    )
    return Plan(
        drill=drill,
        selections=approve(selections, steps),
        steps=steps,
        impact=impacted,
        verdicts=tuple(verdicts),
    )


def break_glass_holders(catalog: cmdb_models.Catalog | None) -> dict[str, tuple[str, ...]]:
    """The CMDB's break-glass holders: user name → the services they hold it for.

    Entities the loader refused count too (their annotation read as written), so a
    leniently loaded catalog never drops a break-glass holder's protection.
    """
    found: dict[str, list[str]] = {}
    for service in catalog.services.values() if catalog is not None else ():
        for person in service.people.break_glass:
            found.setdefault(person.name, []).append(service.ref.short)
    for refused in catalog.refused if catalog is not None else ():
        for name in refused.break_glass:
            found.setdefault(name, []).append(f"{refused.what} (refused by the CMDB loader)")
    return {name: tuple(sorted(set(services))) for name, services in sorted(found.items())}


def _scope_of(mutation: mutations.PlannedMutation) -> tuple[set[str], set[str]]:
    """(Kubernetes namespaces, cluster-wide RBAC keys) a mutation reaches."""
    namespaces: set[str] = set()
    cluster: set[str] = set()
    for ref in (mutation.target, *guardrails.touched_refs(mutation)):
        if ref.provider != models.Provider.KUBERNETES.value:
            continue
        if ref.kind in guardrails.CLUSTER_RBAC_KINDS:
            cluster.add(ref.key)
        elif ref.namespace:
            namespaces.add(ref.namespace)
    return namespaces, cluster


def approve(
    selections: Mapping[str, targets.Selection], steps: Sequence[StepPlan]
) -> dict[str, targets.Selection]:
    """`selections` with the Kubernetes scope their planned mutations reach frozen on them."""
    approved: dict[str, targets.Selection] = {}
    for name, selection in selections.items():
        namespaces: set[str] = set()
        cluster: set[str] = set()
        for step in steps:
            if step.selection != name:
                continue
            for mutation in step.mutations:
                more_ns, more_cluster = _scope_of(mutation)
                namespaces |= more_ns
                cluster |= more_cluster
        approved[name] = dataclasses.replace(
            selection,
            approved=targets.Approved(
                namespaces=frozenset(namespaces), cluster_keys=frozenset(cluster)
            ),
        )
    return approved


def _narrowed(
    found: Sequence[mutations.PlannedMutation], selection: targets.Selection, *, step: str
) -> list[mutations.PlannedMutation]:
    """Of `found`, those inside the selection's `namespaces` (all when it names none)."""
    if not selection.namespaces:
        return list(found)
    wanted = set(selection.namespaces)
    kept = []
    for mutation in found:
        ref = mutation.target
        namespaced = ref.provider == models.Provider.KUBERNETES.value and ref.kind not in (
            "node",
            "namespace",
        )
        if namespaced and ref.namespace not in wanted:
            log.info(
                "step %s leaves %s alone: target %s is narrowed to namespaces %s",
                step,
                ref,
                selection.name,
                ", ".join(sorted(wanted)),
            )
            continue
        kept.append(mutation)
    return kept


def _check_approved(
    found: Sequence[mutations.PlannedMutation], selection: targets.Selection, *, step: str
) -> None:
    """Raise `GuardrailTripped` if a re-planned mutation reaches beyond the judged plan."""
    approved = selection.approved
    if approved is None:
        return
    beyond: list[str] = []
    for mutation in found:
        namespaces, cluster = _scope_of(mutation)
        beyond.extend(
            f"{mutation.action} on {mutation.target} reaches namespace {ns}"
            for ns in sorted(namespaces - approved.namespaces)
        )
        beyond.extend(
            f"{mutation.action} changes {key}" for key in sorted(cluster - approved.cluster_keys)
        )
    if beyond:
        raise errors.GuardrailTripped(
            guardrails.Rule.NAMESPACE_OPT_IN,
            f"step {step}: the world changed since the plan was judged and the step would now"
            f" go beyond it ({'; '.join(beyond)}); nothing of that was touched — plan again",
        )


def resolve_targets(
    scenario: models.Scenario, *, reg: registry.Registry, ctx: context.RunContext
) -> dict[str, targets.Selection]:
    """Resolve every named target once."""
    with collector_paused():
        return _resolve_targets(scenario, reg=reg, ctx=ctx)


def _resolve_targets(
    scenario: models.Scenario, *, reg: registry.Registry, ctx: context.RunContext
) -> dict[str, targets.Selection]:
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
    with collector_paused():
        return _plan_action(step, reg=reg, ctx=ctx, selections=selections)


def _plan_action(
    step: models.Step,
    *,
    reg: registry.Registry,
    ctx: registry.ProviderContext,
    selections: Mapping[str, targets.Selection],
) -> list[mutations.PlannedMutation]:
    assert step.action is not None
    action = reg.get_action(step.action)()
    refs: tuple[mutations.TargetRef, ...] = ()
    selection: targets.Selection | None = None
    if step.target is not None:
        selection = selections.get(step.target)
        if selection is None:
            raise errors.OrchestratorError(f"step {step.name}: target {step.target!r} is unknown")
        refs = selection.refs
    params = action.parse_params(dict(step.params))
    found = action.plan(ctx, targets=refs, params=params)
    if selection is not None:
        found = _narrowed(found, selection, step=step.name)
        _check_approved(found, selection, step=step.name)
    return [_with_step(m, step.name) for m in found]


def _with_step(mutation: mutations.PlannedMutation, step: str) -> mutations.PlannedMutation:
    """`mutation` named for `step`, sharing its JSON: that was frozen (deep-copied) when the
    mutation was made, and `dataclasses.replace` would copy all of it again (a drain over a
    zone carries tens of thousands of evicted pods)."""
    named = copy.copy(mutation)
    object.__setattr__(named, "step", step)
    return named


def describe_mutation(mutation: mutations.PlannedMutation) -> str:
    """`action target`, and what it touches on the way (the pods a drain evicts)."""
    touched = guardrails.touched_refs(mutation)
    shown = f"{mutation.action} {mutation.target}"
    if touched:
        pods = ", ".join(
            f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name for ref in touched
        )
        shown += f" (evicts {pods})"
    return shown


def map_impact(
    scenario: models.Scenario,
    *,
    selections: Mapping[str, targets.Selection],
    catalog: cmdb_models.Catalog | None,
    planned: Sequence[mutations.PlannedMutation] = (),
) -> cmdb_impact.Impact | None:
    """The CMDB services the selections, the pods the mutations evict on the way (and the
    scenario's refs) touch, with dependents."""
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
    hints = [hint for selection in selections.values() for hint in selection.hints]
    for hint in (*hints, *_touched_hints(planned)):
        for service in services_for_hint(catalog, hint):
            touched[str(service.ref)] = service.ref
    for step in scenario.spec.steps:  # a network fault reaches the vendors at its addresses
        cidrs, ports = cmdb_impact.addresses_in(step.params) if step.action else ((), ())
        for service in cmdb_impact.services_for_addresses(catalog, cidrs=cidrs, ports=ports):
            touched[str(service.ref)] = service.ref
    return cmdb_impact.impact(catalog, list(touched.values()))


def _touched_hints(planned: Sequence[mutations.PlannedMutation]) -> list[targets.ServiceHint]:
    """Service hints for the Kubernetes objects mutations touch on the way (evicted pods)."""
    found: list[targets.ServiceHint] = []
    for mutation in planned:
        raw = mutation.pre_state.get("touches")
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            continue
        for item in raw:
            if not isinstance(item, Mapping) or item.get("provider") != "kubernetes":
                continue
            labels = item.get("labels")
            found.append(
                targets.ServiceHint.of(
                    provider="kubernetes",
                    namespace=str(item.get("namespace") or "") or None,
                    labels=(
                        {str(k): str(v) for k, v in labels.items()}
                        if isinstance(labels, Mapping)
                        else None
                    ),
                )
            )
    return list(dict.fromkeys(found))


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
