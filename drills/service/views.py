"""Views: the pydantic response models of plans, runs, events, the CMDB and coverage.

One JSON contract for every entry point: the CLI's `--format json` prints these models
and the REST API returns them. Each view is built from the engine's frozen dataclasses by
a `from_…` constructor and serialised with `dump()` (`model_dump(mode="json",
by_alias=True)`); `model_validate_json` reads the same text back. Field names and shapes
are the ones the CLI printed before these models existed (snake_case for plans, runs and
coverage; camelCase, by alias, for CMDB entities): changing one is changing the contract.
Invariants: views are frozen and refuse unknown fields; times are ISO 8601 as
`datetime.isoformat()` writes them (`+00:00`, not `Z`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

import pydantic

from orchestrator import journal as journal_mod
from orchestrator import mutations, objectives, planning, states
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from reports import coverage as coverage_mod
from scenarios import errors as scenario_errors
from scenarios import models as scenario_models
from scenarios import secrets

IsoTime = Annotated[
    dt.datetime, pydantic.PlainSerializer(lambda value: value.isoformat(), return_type=str)
]
"""A timestamp written as `datetime.isoformat()` does (the format runs have always had)."""


class View(pydantic.BaseModel):
    """Base of every response model: frozen, no unknown fields, read by name or alias."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, pydantic.JsonValue]:
        """The view as JSON data, keys as the contract spells them."""
        dumped: dict[str, pydantic.JsonValue] = self.model_dump(mode="json", by_alias=True)
        return dumped

    def to_text(self) -> str:
        """The view as indented JSON text (what `--format json` prints, without a newline)."""
        return json.dumps(self.dump(), indent=2)


class CamelView(View):
    """A view whose JSON keys are camelCase (`tier_defaulted` is `tierDefaulted`, by alias)."""


# ---- plans ----------------------------------------------------------------------------


class PlanTargetView(View):
    """One resolved target: what it selected out of what, and its blast-radius limit."""

    kind: str
    count: int
    population: int
    limit: str | None
    """`blastRadius.max` as written; None when the target sets no limit."""
    refs: list[str]
    excluded: list[str]
    """`ref: why` for what matched but was left out on purpose."""


class GuardrailVerdictView(View):
    rule: str
    ok: bool
    message: str
    subject: str


class AbortConditionView(View):
    """A `guardrails.abortWhen` condition as the plan will watch it."""

    condition: str
    """`probe checkout-healthy failing for 30s`, `alarm high-errors fires`."""
    probe: str | None = None
    alarm: str | None = None
    scaled: str | None = None
    """Its duration as the run measures it (machine time shrunk by the time scale)."""

    @classmethod
    def from_condition(
        cls, condition: scenario_models.AbortCondition, *, time_scale: float
    ) -> AbortConditionView:
        span = condition.failing_for or (
            condition.failing_ratio.window if condition.failing_ratio else None
        )
        scaled = (
            f"{objectives.human_duration(span.seconds * time_scale)} at time scale {time_scale:g}"
            if span is not None and time_scale != 1
            else None
        )
        return cls(
            condition=condition.describe(),
            probe=condition.probe,
            alarm=condition.alarm,
            scaled=scaled,
        )


class PlanServiceView(View):
    """A CMDB service the plan reaches, and how far from the target it is (0 = targeted)."""

    ref: str
    tier: int
    distance: int


class RollbackStepView(View):
    step: str
    action: str
    target: str


class PlanMutationView(View):
    """A mutation a step will make: its action, target and what it touches on the way."""

    action: str
    target: str
    description: str


class PlanStepView(View):
    """One step of the scenario, in order, with the mutations it will make."""

    name: str
    kind: str
    mutations: list[PlanMutationView]


class CoverageCellView(View):
    """A coverage cell (service, failure mode) a run of the plan will count for."""

    service: str
    mode: str
    distance: int

    @classmethod
    def from_cell(cls, cell: coverage_mod.CountedCell) -> CoverageCellView:
        return cls(service=cell.service, mode=cell.mode, distance=cell.distance)


class KubeTouchView(View):
    """The cluster a drill reaches: its API server and the kubeconfig context naming it."""

    server: str
    context: str


class AwsTouchView(View):
    """The AWS account a drill acts in (`sts get-caller-identity`) and its region."""

    account: str
    arn: str
    region: str


class TouchesView(View):
    """What a drill will touch; a side is None when the drill uses no such provider."""

    kubernetes: KubeTouchView | None = None
    aws: AwsTouchView | None = None


class PlanView(View):
    """A dry run: targets, guardrail verdicts, affected services, the rollback plan."""

    scenario: str
    environment: str
    refused: bool
    targets: dict[str, PlanTargetView]
    guardrails: list[GuardrailVerdictView]
    services: list[PlanServiceView]
    steps: list[PlanStepView]
    rollback: list[RollbackStepView]
    abort_when: list[AbortConditionView] = []
    """The conditions that abort the run while faults are in place."""
    coverage: list[CoverageCellView] | None = None
    """The cells a run will count for; None without a CMDB (nothing to say)."""
    touches: TouchesView | None = None
    """The cluster and AWS account the drill will touch (`runs.touches`)."""

    @classmethod
    def from_plan(
        cls, drill_plan: planning.Plan, *, cells: Sequence[coverage_mod.CountedCell] | None
    ) -> PlanView:
        impacted = drill_plan.impact.services if drill_plan.impact else ()
        return cls(
            scenario=drill_plan.drill.scenario.metadata.name,
            environment=drill_plan.drill.environment.metadata.name,
            refused=drill_plan.refused,
            targets={
                name: PlanTargetView(
                    kind=sel.kind,
                    count=sel.count,
                    population=sel.population,
                    limit=_limit(drill_plan, name),
                    refs=[str(r) for r in sel.refs],
                    excluded=[f"{r}: {why}" for r, why in sel.excluded],
                )
                for name, sel in drill_plan.selections.items()
            },
            guardrails=[
                GuardrailVerdictView(rule=v.rule, ok=v.ok, message=v.message, subject=v.subject)
                for v in drill_plan.verdicts
            ],
            services=[
                PlanServiceView(ref=str(s.service.ref), tier=s.service.tier, distance=s.distance)
                for s in impacted
            ],
            steps=[
                PlanStepView(
                    name=sp.step.name,
                    kind=sp.step.kind.value,
                    mutations=[
                        PlanMutationView(
                            action=m.action,
                            target=str(m.target),
                            description=planning.describe_mutation(m),
                        )
                        for m in sp.mutations
                    ],
                )
                for sp in drill_plan.steps
            ],
            rollback=[
                RollbackStepView(step=m.step, action=m.action, target=str(m.target))
                for m in drill_plan.rollback_plan()
            ],
            abort_when=[
                AbortConditionView.from_condition(c, time_scale=drill_plan.drill.time_scale)
                for c in drill_plan.drill.scenario.spec.guardrails.abort_when
            ],
            coverage=None if cells is None else [CoverageCellView.from_cell(c) for c in cells],
        )


def _limit(drill_plan: planning.Plan, target: str) -> str | None:
    """The target's `blastRadius.max` as written (None: no limit set)."""
    spec = drill_plan.drill.scenario.spec.targets.get(target)
    radius = spec.blast_radius if spec is not None else None
    return str(radius.max) if radius is not None else None


# ---- runs -----------------------------------------------------------------------------


class RunView(View):
    """A run as `runs list` shows it: its state, verdict, times and record."""

    id: str
    scenario: str
    environment: str
    state: states.RunState
    verdict: states.Verdict | None
    reason: str
    abort_reason: str | None
    started_at: IsoTime
    finished_at: IsoTime | None
    record: dict[str, pydantic.JsonValue]

    @classmethod
    def from_run(cls, run: states.Run) -> RunView:
        return cls(
            id=run.id,
            scenario=run.scenario,
            environment=run.environment,
            state=run.state,
            verdict=run.verdict,
            reason=run.reason,
            abort_reason=run.abort_reason,
            started_at=run.started_at,
            finished_at=run.finished_at,
            record=_json_object(run.record.to_json()),
        )


def _json_object(value: Mapping[str, mutations.JsonValue]) -> dict[str, pydantic.JsonValue]:
    """A stored JSON object as plain JSON data (lists and dicts, copied)."""
    copied: dict[str, pydantic.JsonValue] = json.loads(json.dumps(dict(value), default=str))
    return copied


class EventView(View):
    """One line of a run's timeline."""

    at: IsoTime
    kind: str
    message: str
    data: dict[str, pydantic.JsonValue]

    @classmethod
    def from_event(cls, event: journal_mod.Event) -> EventView:
        return cls(
            at=event.at, kind=event.kind, message=event.message, data=_json_object(event.data)
        )


class JournalEntryView(View):
    """One mutation of a run as the journal holds it (intent, applied, reverted, …)."""

    seq: int
    step: str
    action: str
    target: str
    state: mutations.EntryState
    error: str | None

    @classmethod
    def from_entry(cls, entry: mutations.JournalEntry) -> JournalEntryView:
        return cls(
            seq=entry.seq,
            step=entry.step,
            action=entry.action,
            target=str(entry.target),
            state=entry.state,
            error=entry.error,
        )


class RunDetailView(RunView):
    """A run as `runs show` shows it: the run, its timeline and its journal."""

    timeline: list[EventView]
    journal: list[JournalEntryView]

    @classmethod
    def from_parts(
        cls,
        run: states.Run,
        *,
        events: Iterable[journal_mod.Event],
        entries: Iterable[mutations.JournalEntry],
    ) -> RunDetailView:
        return cls.model_validate(
            {
                **dict(RunView.from_run(run)),
                "timeline": [EventView.from_event(e) for e in events],
                "journal": [JournalEntryView.from_entry(e) for e in entries],
            }
        )


# ---- CMDB -----------------------------------------------------------------------------


def duration_text(value: dt.timedelta | None) -> str:
    """`15m`, `1h30m`, `0s`; `-` when unset."""
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    text = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            text += f"{count}{unit}"
    return text


def _optional_duration(value: dt.timedelta | None) -> str | None:
    return None if value is None else duration_text(value)


def _seconds(value: dt.timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _strs(values: Iterable[object]) -> list[str]:
    return [str(v) for v in values]


class ObjectivesView(CamelView):
    """RTO and RPO: the default, in text and seconds, and the overrides per failure mode."""

    rto: str | None
    rpo: str | None
    rto_seconds: int | None = pydantic.Field(alias="rtoSeconds")
    rpo_seconds: int | None = pydantic.Field(alias="rpoSeconds")
    rto_by_mode: dict[str, str] = pydantic.Field(alias="rtoByMode")
    rpo_by_mode: dict[str, str] = pydantic.Field(alias="rpoByMode")

    @classmethod
    def from_objectives(cls, objectives: cmdb_models.Objectives) -> ObjectivesView:
        return cls(
            rto=_optional_duration(objectives.rto),
            rpo=_optional_duration(objectives.rpo),
            rto_seconds=_seconds(objectives.rto),
            rpo_seconds=_seconds(objectives.rpo),
            rto_by_mode={
                str(m): duration_text(v) for m, v in sorted(objectives.rto_by_mode.items())
            },
            rpo_by_mode={
                str(m): duration_text(v) for m, v in sorted(objectives.rpo_by_mode.items())
            },
        )


class DependencyView(CamelView):
    ref: str
    type: str
    via: str | None


class VendorView(CamelView):
    ref: str
    cidrs: list[str]
    ports: list[int]

    @classmethod
    def from_vendor(cls, vendor: cmdb_models.Vendor) -> VendorView:
        return cls(ref=str(vendor.ref), cidrs=_strs(vendor.cidrs), ports=list(vendor.ports))


class KubernetesPlacementView(CamelView):
    selectors: list[str]
    namespaces: list[str]
    clusters: list[str]


class AwsPlacementView(CamelView):
    tags: dict[str, str]
    regions: list[str]
    zones: list[str]
    resources: list[str]


class PeopleView(CamelView):
    owners: list[str]
    on_call: list[str] = pydantic.Field(alias="onCall")
    break_glass: list[str] = pydantic.Field(alias="breakGlass")
    runbook_owner: str | None = pydantic.Field(alias="runbookOwner")
    runbook_editors: list[str] = pydantic.Field(alias="runbookEditors")
    repo_path: str | None = pydantic.Field(alias="repoPath")


class SourceView(CamelView):
    file: str
    line: int


class ServiceView(CamelView):
    """One CMDB service in full (`cmdb show REF --format json`)."""

    ref: str
    name: str
    kind: str
    type: str
    title: str | None
    system: str | None
    owner: str
    tier: int
    tier_defaulted: bool = pydantic.Field(alias="tierDefaulted")
    lifecycle: str | None
    objectives: ObjectivesView
    depends_on: list[DependencyView] = pydantic.Field(alias="dependsOn")
    used_by: list[str] = pydantic.Field(alias="usedBy")
    vendor: VendorView | None
    vendors: list[VendorView]
    kubernetes: KubernetesPlacementView
    aws: AwsPlacementView
    people: PeopleView
    source: SourceView

    @classmethod
    def from_service(
        cls, service: cmdb_models.Service, *, catalog: cmdb_models.Catalog
    ) -> ServiceView:
        people = service.people
        return cls(
            ref=str(service.ref),
            name=service.name,
            kind=service.kind.value,
            type=service.type,
            title=service.title,
            system=str(service.system) if service.system else None,
            owner=str(service.owner),
            tier=service.tier,
            tier_defaulted=service.tier_defaulted,
            lifecycle=service.lifecycle,
            objectives=ObjectivesView.from_objectives(service.objectives),
            depends_on=[
                DependencyView(ref=str(d.ref), type=d.type.value, via=str(d.via) if d.via else None)
                for d in service.dependencies
            ],
            used_by=_strs(s.ref for s in catalog.dependents(service.ref)),
            vendor=VendorView.from_vendor(service.vendor) if service.vendor else None,
            vendors=[VendorView.from_vendor(v) for v in service.vendors],
            kubernetes=KubernetesPlacementView(
                selectors=_strs(service.kubernetes.selectors),
                namespaces=list(service.kubernetes.namespaces),
                clusters=list(service.kubernetes.clusters),
            ),
            aws=AwsPlacementView(
                tags=dict(service.aws.tags),
                regions=list(service.aws.regions),
                zones=list(service.aws.zones),
                resources=_strs(service.aws.resources),
            ),
            people=PeopleView(
                owners=_strs(people.owners),
                on_call=list(people.on_call),
                break_glass=_strs(people.break_glass),
                runbook_owner=str(people.runbook_owner) if people.runbook_owner else None,
                runbook_editors=_strs(people.runbook_editors),
                repo_path=people.repo_path,
            ),
            source=SourceView(file=service.source.file, line=service.source.line),
        )


class ServiceListView(CamelView):
    """Every CMDB service (`cmdb show --format json`), by tier then ref."""

    services: list[ServiceView]


class ImpactedServiceView(CamelView):
    """A service the loss reaches: how far, along which path, and its objectives."""

    ref: str
    tier: int
    distance: int
    path: list[str]
    via: str | None
    owner: str
    rto: str | None
    """The RTO that holds for the failure mode asked about (else the default)."""
    rpo: str | None
    objectives: ObjectivesView


class ImpactView(CamelView):
    """What losing the targets reaches (`cmdb impact --format json`)."""

    targets: list[str]
    failure_mode: str | None = pydantic.Field(alias="failureMode")
    services: list[ImpactedServiceView]

    @classmethod
    def from_impact(cls, result: cmdb_impact.Impact, *, failure_mode: str | None) -> ImpactView:
        return cls(
            targets=_strs(result.targets),
            failure_mode=failure_mode,
            services=[
                ImpactedServiceView(
                    ref=str(item.ref),
                    tier=item.tier,
                    distance=item.distance,
                    path=_strs(item.path),
                    via=item.via.value if item.via else None,
                    owner=str(item.owner),
                    rto=_optional_duration(item.objectives.rto_for(failure_mode)),
                    rpo=_optional_duration(item.objectives.rpo_for(failure_mode)),
                    objectives=ObjectivesView.from_objectives(item.objectives),
                )
                for item in result.services
            ],
        )


class ProblemView(CamelView):
    """One catalog problem, placed at file:line:column and a field."""

    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str
    severity: str

    @classmethod
    def from_problem(cls, problem: scenario_errors.Problem) -> ProblemView:
        return cls(
            file=problem.file,
            line=problem.line,
            column=problem.column,
            field=problem.field,
            message=problem.message,
            hint=problem.hint,
            severity=problem.severity,
        )


class CatalogCheckView(CamelView):
    """`cmdb validate --format json`: valid or not, what loaded, what was refused, and why."""

    valid: bool
    entities: int
    refused: list[str]
    problems: list[ProblemView]


# ---- documents ------------------------------------------------------------------------


class DocumentView(View):
    """One loaded document: its kind, name and file."""

    kind: str
    name: str
    file: str


class BlockedView(View):
    """Checks of one document that wait until its reported errors are fixed."""

    file: str
    line: int
    checks: list[str]


class ValidationView(View):
    """`validate --format json|yaml`: valid or not, what loaded, every problem, what waits."""

    valid: bool
    documents: list[DocumentView]
    problems: list[ProblemView]
    blocked: list[BlockedView]


class ScenarioSummaryView(View):
    """One scenario of a library: name, failure mode, RTO objective and what it does."""

    name: str
    failure_mode: str
    rto: str | None
    description: str
    file: str


class ScenarioListView(View):
    """`scenarios list --format json|yaml`: the scenarios, sorted by name, and load problems."""

    scenarios: list[ScenarioSummaryView]
    problems: list[ProblemView]


# ---- coverage -------------------------------------------------------------------------


class CellView(View):
    """One coverage cell: a service and failure mode, judged by its latest covering run."""

    mode: str
    state: coverage_mod.CellState
    required: bool
    rules: list[str]
    window_days: float
    scenarios: list[str]
    last_run: str | None
    last_run_at: IsoTime | None
    last_result: str | None
    achieved_rto_s: float | None
    target_rto_s: float | None
    why: str
    open_actions: int
    inconclusive_runs: int

    @classmethod
    def from_cell(cls, cell: coverage_mod.Cell) -> CellView:
        return cls(
            mode=cell.mode,
            state=cell.state,
            required=cell.required,
            rules=list(cell.rules),
            window_days=cell.window_days,
            scenarios=list(cell.scenarios),
            last_run=cell.last_run,
            last_run_at=cell.last_run_at,
            last_result=cell.last_result,
            achieved_rto_s=cell.achieved_rto_s,
            target_rto_s=cell.target_rto_s,
            why=cell.why,
            open_actions=cell.open_actions,
            inconclusive_runs=cell.inconclusive_runs,
        )


class CoverageRowView(View):
    ref: str
    system: str | None
    tier: int
    owner: str
    cells: list[CellView]


class RollupView(View):
    """Required cells of a group: how many have a fresh pass, the share, and the score."""

    group: str
    required: int
    fresh: int
    percent: float | None
    score: float | None

    @classmethod
    def from_rollup(cls, rollup: coverage_mod.Rollup) -> RollupView:
        return cls(
            group=rollup.label,
            required=rollup.required,
            fresh=rollup.fresh,
            percent=rollup.percent,
            score=rollup.score,
        )


class RollupsView(View):
    overall: RollupView
    by_tier: list[RollupView]
    by_system: list[RollupView]
    by_mode: list[RollupView]


class CoverageView(View):
    """The coverage matrix (`coverage --format json`): every cell of every service."""

    generated_at: IsoTime
    policy: str
    weights: dict[str, int]
    modes: list[str]
    services: list[CoverageRowView]
    rollups: RollupsView

    @classmethod
    def from_matrix(cls, matrix: coverage_mod.Matrix) -> CoverageView:
        return cls(
            generated_at=matrix.generated_at,
            policy=matrix.policy,
            weights={state.value: weight for state, weight in coverage_mod.WEIGHTS.items()},
            modes=list(matrix.modes),
            services=[
                CoverageRowView(
                    ref=row.ref,
                    system=row.system,
                    tier=row.tier,
                    owner=row.owner,
                    cells=[CellView.from_cell(c) for c in row.cells],
                )
                for row in matrix.rows
            ],
            rollups=RollupsView(
                overall=RollupView.from_rollup(matrix.overall),
                by_tier=[RollupView.from_rollup(r) for r in matrix.by_tier],
                by_system=[RollupView.from_rollup(r) for r in matrix.by_system],
                by_mode=[RollupView.from_rollup(r) for r in matrix.by_mode],
            ),
        )


# ---- the API's documents, runs and kill switches ------------------------------------------
# (camelCase by alias, as the API issue spells them: `awaitingApproval`, `nextCursor`)


def _masked(value: object) -> pydantic.JsonValue:
    """JSON data with every secret-looking key's value and credential-looking text masked."""
    masked: pydantic.JsonValue = json.loads(json.dumps(secrets.Redactor().json(value), default=str))
    return masked


class ParameterView(CamelView):
    """A declared scenario parameter; a secret one never shows its default."""

    name: str
    type: str
    default: pydantic.JsonValue = None
    description: str
    secret: bool

    @classmethod
    def from_parameter(cls, name: str, declared: scenario_models.Parameter) -> ParameterView:
        secret = declared.secret or secrets.looks_secret(name)
        shown: pydantic.JsonValue = None
        if declared.default is not None:
            masked = _masked({name: declared.default})
            shown = secrets.MASK if secret else (masked[name] if isinstance(masked, dict) else None)
        return cls(
            name=name,
            type=declared.type.value,
            default=shown,
            description=declared.description,
            secret=secret,
        )


class ScenarioView(CamelView):
    """One scenario: what it rehearses, its parameters, and the document (secrets masked)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "az-failure-kubernetes",
                    "failureMode": "availability-zone",
                    "description": "Lose one zone's nodes",
                    "rto": "5m",
                    "file": "/srv/scenarios/az-failure-kubernetes.yaml",
                    "bundled": True,
                    "parameters": [],
                    "document": {"kind": "Scenario"},
                }
            ]
        }
    )

    name: str
    failure_mode: str = pydantic.Field(alias="failureMode")
    description: str
    rto: str | None
    file: str
    bundled: bool
    parameters: list[ParameterView]
    document: dict[str, pydantic.JsonValue]

    @classmethod
    def from_scenario(
        cls, scenario: scenario_models.Scenario, *, file: str, bundled: bool
    ) -> ScenarioView:
        spec = scenario.spec
        secret_defaults = [
            str(item)
            for name, declared in spec.parameters.items()
            if declared.default is not None and (declared.secret or secrets.looks_secret(name))
            for item in (
                declared.default
                if isinstance(declared.default, list | tuple)
                else [declared.default]
            )
        ]
        masking = secrets.Redactor().with_secrets(secret_defaults)
        dumped = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
        document = _masked(masking.json(dumped))
        return cls(
            name=scenario.metadata.name,
            failure_mode=spec.failure_mode.value,
            description=spec.description,
            rto=str(spec.objectives.rto) if spec.objectives.rto is not None else None,
            file=file,
            bundled=bundled,
            parameters=[
                ParameterView.from_parameter(name, declared)
                for name, declared in spec.parameters.items()
            ],
            document=document if isinstance(document, dict) else {},
        )


class KubernetesAccessView(CamelView):
    """How the Environment reaches its cluster (no credentials: a kubeconfig is a path)."""

    kubeconfig: str | None
    context: str | None
    in_cluster: bool = pydantic.Field(alias="inCluster")
    require_namespace_opt_in: bool = pydantic.Field(alias="requireNamespaceOptIn")
    allow_cluster_scope: bool = pydantic.Field(alias="allowClusterScope")


class AwsAccessView(CamelView):
    """How the Environment reaches AWS: region, profile or role name, endpoint (no keys)."""

    region: str
    profile: str | None
    role_arn: str | None = pydantic.Field(alias="roleArn")
    endpoint_url: str | None = pydantic.Field(alias="endpointUrl")


class FreezeView(CamelView):
    start: IsoTime
    end: IsoTime
    reason: str


class EnvironmentSummaryView(CamelView):
    """One Environment as `GET /environments` lists it."""

    name: str
    file: str
    protected: bool
    approvals_required: int = pydantic.Field(alias="approvalsRequired")
    labels: dict[str, str]


class EnvironmentView(EnvironmentSummaryView):
    """One Environment without anything secret: access is described, never its credentials;
    a parameter whose name or value looks secret shows `***`; URLs lose their userinfo."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "staging",
                    "file": "/srv/environments/staging.environment.yaml",
                    "protected": False,
                    "approvalsRequired": 0,
                    "labels": {},
                    "timeScale": 1.0,
                    "kubernetes": {
                        "kubeconfig": "/srv/kube/staging.yaml",
                        "context": "staging",
                        "inCluster": False,
                        "requireNamespaceOptIn": True,
                        "allowClusterScope": False,
                    },
                    "aws": None,
                    "prometheus": "https://***@prometheus.staging.example",
                    "cmdb": ["/srv/catalog"],
                    "parameters": {"zone": "us-east-1b", "apiToken": "***"},
                    "freezes": [],
                    "allowedFailureModes": None,
                }
            ]
        }
    )

    time_scale: float = pydantic.Field(alias="timeScale")
    kubernetes: KubernetesAccessView | None
    aws: AwsAccessView | None
    prometheus: str | None
    cmdb: list[str]
    parameters: dict[str, pydantic.JsonValue]
    freezes: list[FreezeView]
    allowed_failure_modes: list[str] | None = pydantic.Field(alias="allowedFailureModes")

    @classmethod
    def from_environment(
        cls, environment: scenario_models.Environment, *, file: str
    ) -> EnvironmentView:
        spec = environment.spec
        kube, aws = spec.kubernetes, spec.aws
        parameters = _masked(dict(spec.parameters))
        return cls(
            name=environment.metadata.name,
            file=file,
            protected=spec.protected or spec.approvals.required > 0,
            approvals_required=spec.approvals.required,
            labels=dict(environment.metadata.labels),
            time_scale=spec.time_scale,
            kubernetes=None
            if kube is None
            else KubernetesAccessView(
                kubeconfig=None if kube.kubeconfig is None else str(kube.kubeconfig),
                context=kube.context,
                in_cluster=kube.in_cluster,
                require_namespace_opt_in=kube.require_namespace_opt_in,
                allow_cluster_scope=kube.allow_cluster_scope,
            ),
            aws=None
            if aws is None
            else AwsAccessView(
                region=aws.region,
                profile=aws.profile,
                role_arn=aws.role_arn,
                endpoint_url=None if aws.endpoint_url is None else secrets.redact(aws.endpoint_url),
            ),
            prometheus=None if spec.prometheus is None else secrets.redact(spec.prometheus.url),
            cmdb=[] if spec.cmdb is None else [str(p) for p in spec.cmdb.backstage],
            parameters=parameters if isinstance(parameters, dict) else {},
            freezes=[FreezeView(start=f.start, end=f.end, reason=f.reason) for f in spec.freezes],
            allowed_failure_modes=None
            if spec.allowed_failure_modes is None
            else [m.value for m in spec.allowed_failure_modes],
        )


class EnvironmentListView(CamelView):
    """The Environments of the configured folders, by name, and the problems of those left out."""

    environments: list[EnvironmentSummaryView]
    problems: list[ProblemView]


class DrillView(CamelView):
    """A Drill document: a scenario bound to an environment, its parameters (secrets
    masked), schedule and recorded approvals."""

    name: str
    file: str
    scenario: str
    environment: str
    parameters: dict[str, pydantic.JsonValue]
    schedule: str | None
    """The cron expression, with its time zone: `0 10 * * 1 (Europe/Berlin)`."""
    approvals: list[str]
    notes: str

    @classmethod
    def from_drill(cls, drill: scenario_models.Drill, *, file: str) -> DrillView:
        spec = drill.spec
        parameters = _masked(dict(spec.parameters))
        return cls(
            name=drill.metadata.name,
            file=file,
            scenario=spec.scenario,
            environment=spec.environment,
            parameters=parameters if isinstance(parameters, dict) else {},
            schedule=None if spec.schedule is None else _schedule_text(spec.schedule),
            approvals=[f"{a.by} at {a.at.isoformat()}" for a in spec.approvals],
            notes=spec.notes,
        )


class DrillListView(CamelView):
    drills: list[DrillView]
    problems: list[ProblemView]


class RunRequestBody(CamelView):
    """What `POST /runs` and `POST /plans` take: a drill, where it runs, its parameters."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "scenario": "az-failure-kubernetes",
                    "environment": "staging",
                    "parameters": {"zone": "us-east-1b", "soak": "2m"},
                }
            ]
        }
    )

    scenario: str = pydantic.Field(min_length=1)
    """A Scenario name (the configured folders, then the bundled library), a Drill name,
    or a file inside one of the configured folders."""
    environment: str | None = None
    """An Environment name (the configured folders) or file; a Drill names its own."""
    parameters: dict[str, str | int | float | bool | list[str | int | float | bool]] = (
        pydantic.Field(default_factory=dict)
    )


class RunSubmittedView(CamelView):
    """A run `POST /runs` queued: its id and state, and whether it waits for approvals."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "20250101T120000Z-3f9a1c2b",
                    "state": "pending",
                    "awaitingApproval": False,
                    "scenario": "az-failure-kubernetes",
                    "environment": "staging",
                }
            ]
        }
    )

    id: str
    state: states.RunState
    awaiting_approval: bool = pydantic.Field(alias="awaitingApproval")
    scenario: str
    environment: str


class RunPageView(CamelView):
    """One page of runs, newest first; `nextCursor` fetches the next (null: the last page)."""

    runs: list[RunView]
    next_cursor: str | None = pydantic.Field(alias="nextCursor")


class AckRequestBody(CamelView):
    """`POST /runs/{id}/steps/{step}/ack`: what was done, and by whom (default: the caller)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"evidence": "https://chat/escalation/123", "by": "alice"}]}
    )

    evidence: str = pydantic.Field(min_length=1)
    by: str | None = None


class AckView(CamelView):
    """An acknowledged manual step."""

    run: str
    step: str
    by: str
    evidence: str


class KillswitchRequestBody(CamelView):
    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"reason": "incident INC-1234 in progress"}]}
    )

    reason: str = pydantic.Field(min_length=1)


class KillswitchView(CamelView):
    """The global kill switch, or one Environment's (`environment` names it)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "environment": None,
                    "engaged": True,
                    "by": "alice",
                    "reason": "incident INC-1234 in progress",
                    "at": "2025-01-01T12:00:00+00:00",
                    "aborted": ["20250101T115500Z-3f9a1c2b"],
                }
            ]
        }
    )

    environment: str | None
    engaged: bool
    by: str
    reason: str
    at: IsoTime | None
    aborted: list[str] = []
    """The runs this change asked to abort (engaging only)."""


class HealthView(CamelView):
    """`/healthz` and `/readyz`: `ok`, and for readiness what was checked."""

    status: str
    checks: dict[str, str] = {}


def _schedule_text(schedule: scenario_models.Schedule) -> str:
    """`0 10 * * tue (Europe/Berlin)`, `every 30m (UTC)` or `at 2026-03-01T10:00:00+00:00 (UTC)`."""
    if schedule.cron is not None:
        return f"{schedule.cron} ({schedule.timezone})"
    if schedule.every is not None:
        return f"every {schedule.every} ({schedule.timezone})"
    at = schedule.at.isoformat() if schedule.at is not None else "?"
    return f"at {at} ({schedule.timezone})"
