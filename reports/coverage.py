"""Coverage: which CMDB services have been drilled for which failure modes, and how well.

The matrix has a row per CMDB service (grouped by system, sorted by tier then name) and a
column per failure mode: `availability-zone`, `region`, `third-party:<vendor>` for each
vendor in the catalog, `dependency`, `key-person`, plus any mode a scenario declares.

A run's outcome (`outcome_of`) is PASSED (completed, hypothesis held), FAILED (the
hypothesis deviated — a probe breached its tolerance, even in a run that later crashed —
or the rollback failed and faults may remain) or INCONCLUSIVE: the run says nothing about
the service because it was refused at plan time (guardrails, or planning could not
reach a system), the orchestrator crashed and recovery ended it, a step failed on an
error (an API that answered 500, a timeout), or it was aborted (operator, kill switch,
deadline, a steady state already broken before the drill) before a probe breached.

A cell's state, from the latest *conclusive* covering run (an inconclusive run neither
erases an earlier pass nor counts as a failure; it is counted beside the cell):
- NOT_APPLICABLE: the mode cannot hit the service (a vendor has no zones; a service with
  no dependency has no dependency to lose; `third-party:V` only where V is reached).
- NOT_RUN: no run covers it.
- INCONCLUSIVE: runs cover it, but none was conclusive.
- FAILED: the latest conclusive covering run failed, or it missed the service's RTO for
  that mode (achieved RTO divided by the run's time scale, against the CMDB objective).
- EXPIRED: the latest covering run passed, but longer ago than the policy window for the
  service's tier ("by time"), or the service's CMDB entry changed since ("by change": its
  `fingerprints.of_service` hash differs from the one recorded with the run; a run with
  no recorded hash is judged by time only).
- PASSED: otherwise.
A run covers (service, mode) when its failure mode is the mode's and the service is among
the services the run reached (`reports.impact.reached`: recorded at plan time from its
targets' CMDB links and `spec.services`, the same set its post-mortem's impact table
shows); for `dependency` the service must be downstream of the target (it is the one
losing a dependency); for `third-party:V` the vendor V must have been reached too.
`counted_cells` answers, for a plan, which cells its run will count for.

Roll-ups count required cells only: the share with a fresh pass, and a score averaging
PASSED 100, EXPIRED 75, FAILED 50, INCONCLUSIVE 0, NOT_RUN 0 (Gremlin's reliability-score
weighting; an inconclusive run proved nothing about the service).
Pure functions: the clock, catalog, policy and run summaries are passed in.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence

from orchestrator import events, journal, planning, states
from orchestrator.cmdb import models as cmdb_models
from reports import evidence, fingerprints, impact, policy, postmortem

log = logging.getLogger(__name__)

BASE_MODES: tuple[str, ...] = ("availability-zone", "region", "dependency", "key-person")
THIRD_PARTY = "third-party"


class CellState(enum.StrEnum):
    PASSED = "PASSED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_RUN = "NOT_RUN"
    NOT_APPLICABLE = "NOT_APPLICABLE"


WEIGHTS: Mapping[CellState, int] = {
    CellState.PASSED: 100,
    CellState.EXPIRED: 75,
    CellState.FAILED: 50,
    CellState.INCONCLUSIVE: 0,
    CellState.NOT_RUN: 0,
}
"""Score weights of required cells (Gremlin's reliability-score weighting)."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What coverage needs of one finished run."""

    run_id: str
    scenario: str
    failure_mode: str
    finished_at: dt.datetime
    passed: bool
    result: str
    impacted: Mapping[str, int]
    """Canonical service ref -> distance from the target (0 = targeted)."""
    fingerprints: Mapping[str, str]
    achieved_rto_s: float | None
    """Real-world seconds (measured RTO divided by the run's time scale)."""
    open_actions: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Service short name -> action items the run's post-mortem gives it."""
    inconclusive: str | None = None
    """Why the run says nothing about the services it reached; None: it is conclusive."""


@dataclasses.dataclass(frozen=True)
class Cell:
    service: str
    mode: str
    state: CellState
    required: bool
    rules: tuple[str, ...]
    window_days: float
    scenarios: tuple[str, ...]
    last_run: str | None
    last_run_at: dt.datetime | None
    last_result: str | None
    achieved_rto_s: float | None
    target_rto_s: float | None
    why: str
    open_actions: int
    inconclusive_runs: int = 0
    """Covering runs that were inconclusive and newer than the run the state comes from
    (all covering runs when the state is INCONCLUSIVE)."""


@dataclasses.dataclass(frozen=True)
class Row:
    ref: str
    name: str
    system: str | None
    tier: int
    owner: str
    cells: tuple[Cell, ...]


@dataclasses.dataclass(frozen=True)
class Rollup:
    label: str
    required: int
    fresh: int
    score: float | None

    @property
    def percent(self) -> float | None:
        return None if self.required == 0 else round(100.0 * self.fresh / self.required, 1)


@dataclasses.dataclass(frozen=True)
class Matrix:
    generated_at: dt.datetime
    policy: str
    modes: tuple[str, ...]
    rows: tuple[Row, ...]
    overall: Rollup
    by_tier: tuple[Rollup, ...]
    by_system: tuple[Rollup, ...]
    by_mode: tuple[Rollup, ...]


# -- from the store ----------------------------------------------------------------------


def outcome_of(run_evidence: evidence.RunEvidence) -> tuple[bool, str | None]:
    """(passed, why inconclusive) of a finished run, by the rules in the module docstring."""
    run = run_evidence.run
    if run.record.refused:
        return False, f"refused at plan time, nothing was touched ({run.reason})"
    if _breached(run_evidence) or run.state is states.RunState.ROLLBACK_FAILED:
        return False, None
    if run.state is states.RunState.COMPLETED and run.verdict is states.Verdict.HELD:
        return True, None
    crashed = any(
        e.kind == events.EventKind.STATE and e.data.get("state") == "crashed"
        for e in run_evidence.events
    )
    if crashed:
        return False, f"the orchestrator crashed; recovery ended the run {run.state.value}"
    if run.state is states.RunState.FAILED:
        return False, f"the drill failed on an error, not a probe ({run.reason})"
    return False, f"ended {run.state.value} before the hypothesis was judged ({run.reason})"


def _breached(run_evidence: evidence.RunEvidence) -> bool:
    """Whether the hypothesis deviated: the verdict says so, a probe step failed, or a
    probe went past its tolerance during the drill (seen even when no verdict was given)."""
    if run_evidence.run.verdict is states.Verdict.DEVIATED:
        return True
    for event in run_evidence.events:
        if event.kind == events.EventKind.DEVIATION:
            return True
        if event.kind == events.EventKind.PROBE and event.data.get("phase") == "during":
            streak, tolerance = event.data.get("streak"), event.data.get("tolerance")
            if isinstance(streak, int) and isinstance(tolerance, int) and streak > tolerance:
                return True
    return False


def summarise(
    run_evidence: evidence.RunEvidence,
    *,
    failure_mode: str,
    catalog: cmdb_models.Catalog | None,
) -> RunSummary | None:
    """The coverage view of one finished run; None for a run not finished yet."""
    run = run_evidence.run
    if not run.terminal or run.finished_at is None:
        return None
    recorded = bool(run.record.impact_rows)
    scenario = None if recorded else evidence.scenario_for(run)
    impacted = {r.ref: r.distance for r in impact.reached(run, scenario, catalog)}
    facts = evidence.facts(run_evidence)
    hashes_raw = facts.get("fingerprints")
    hashes = (
        {str(k): str(v) for k, v in hashes_raw.items()} if isinstance(hashes_raw, Mapping) else {}
    )
    achieved = run.record.objectives.achieved_rto_s if run.record.objectives else None
    scale = run.record.time_scale or 1.0
    passed, inconclusive = outcome_of(run_evidence)
    open_actions: dict[str, int] = {}
    if not passed:
        report = postmortem.build_postmortem(run_evidence, evidence.scenario_for(run), cmdb=catalog)
        for item in report.action_items:
            if item.service:
                open_actions[item.service] = open_actions.get(item.service, 0) + 1
    verdict = run.verdict.value if run.verdict else "-"
    return RunSummary(
        run_id=run.id,
        scenario=run.scenario,
        failure_mode=failure_mode,
        finished_at=run.finished_at,
        passed=passed,
        result=f"{run.state.value}/{verdict}" + ("/refused" if run.record.refused else ""),
        impacted=impacted,
        fingerprints=hashes,
        achieved_rto_s=None if achieved is None else achieved / scale,
        open_actions=open_actions,
        inconclusive=inconclusive,
    )


def load_summaries(
    store: journal.Journal, *, catalog: cmdb_models.Catalog | None, limit: int | None = 1000
) -> list[RunSummary]:
    """Summaries of the finished runs in `store` (newest first), refused ones included."""
    found: list[RunSummary] = []
    for run in store.list_runs(states_in=states.TERMINAL, limit=limit):
        run_evidence = evidence.load(store, run.id)
        mode = evidence.facts(run_evidence).get("failure_mode")
        if not isinstance(mode, str):
            scenario = evidence.scenario_for(run)
            mode = scenario.spec.failure_mode.value if scenario else "custom"
        summary = summarise(run_evidence, failure_mode=mode, catalog=catalog)
        if summary is not None:
            found.append(summary)
    return found


# -- the matrix --------------------------------------------------------------------------


def vendors(catalog: cmdb_models.Catalog) -> list[cmdb_models.EntityRef]:
    """Every third party in the catalog: vendor resources and the vendors services call."""
    refs = {s.ref for s in catalog.services.values() if s.vendor is not None}
    refs |= {v.ref for s in catalog.services.values() for v in s.vendors}
    return sorted(refs)


def modes_for(catalog: cmdb_models.Catalog, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The matrix columns: base modes, a third-party column per vendor, then `extra`."""
    columns = ["availability-zone", "region"]
    columns += [f"{THIRD_PARTY}:{ref.name}" for ref in vendors(catalog)]
    columns += ["dependency", "key-person"]
    for mode in extra:
        if mode not in columns and mode != THIRD_PARTY:
            columns.append(mode)
    return tuple(columns)


def _closure(
    catalog: cmdb_models.Catalog, ref: cmdb_models.EntityRef
) -> set[cmdb_models.EntityRef]:
    """Everything `ref` depends on, transitively (cycles end the walk)."""
    seen: set[cmdb_models.EntityRef] = set()
    stack = [ref]
    while stack:
        current = catalog.services.get(stack.pop())
        if current is None:
            continue
        for dep in current.depends_on:
            if dep not in seen and dep != ref:
                seen.add(dep)
                stack.append(dep)
    return seen


def _applicable(
    catalog: cmdb_models.Catalog, service: cmdb_models.Service, mode: str
) -> tuple[bool, str]:
    base, _, vendor = mode.partition(":")
    if base in ("availability-zone", "region") and service.vendor is not None:
        return False, "a third party has no zones or regions of ours"
    if base == "dependency" and not service.dependencies:
        return False, "the service depends on nothing in the CMDB"
    if base == THIRD_PARTY:
        reached = {service.ref, *_closure(catalog, service.ref), *(v.ref for v in service.vendors)}
        if not any(ref.name == vendor for ref in reached):
            return False, f"the service does not reach {vendor}"
    return True, ""


def _covers(run: RunSummary, service: cmdb_models.Service, mode: str) -> bool:
    base, _, vendor = mode.partition(":")
    if run.failure_mode != base:
        return False
    distance = run.impacted.get(str(service.ref))
    if distance is None:
        return False
    if base == "dependency" and distance == 0:
        return False
    if base == THIRD_PARTY:
        return any(ref.rpartition("/")[2] == vendor for ref in run.impacted)
    return True


@dataclasses.dataclass(frozen=True)
class CountedCell:
    """A (service, mode) cell a planned drill will count for, and how it reaches it."""

    service: str
    mode: str
    distance: int


def counted_cells(
    catalog: cmdb_models.Catalog, *, failure_mode: str, impacted: Mapping[str, int]
) -> list[CountedCell]:
    """The cells a run of `failure_mode` that reaches `impacted` (ref -> distance) counts for."""
    probe = RunSummary(
        run_id="plan",
        scenario="",
        failure_mode=failure_mode,
        finished_at=dt.datetime.min.replace(tzinfo=dt.UTC),
        passed=True,
        result="",
        impacted=impacted,
        fingerprints={},
        achieved_rto_s=None,
    )
    found = []
    for service in sorted(catalog.services.values(), key=lambda s: (s.tier, s.ref)):
        for mode in modes_for(catalog, [failure_mode]):
            if _applicable(catalog, service, mode)[0] and _covers(probe, service, mode):
                found.append(CountedCell(str(service.ref), mode, impacted.get(str(service.ref), 0)))
    return found


def plan_cells(
    drill_plan: planning.Plan, catalog: cmdb_models.Catalog | None
) -> list[CountedCell] | None:
    """The cells `drill_plan`'s run will count for; None without a CMDB (nothing to say)."""
    if catalog is None or drill_plan.impact is None:
        return None
    impacted = {str(item.ref): item.distance for item in drill_plan.impact.services}
    mode = drill_plan.drill.scenario.spec.failure_mode.value
    return counted_cells(catalog, failure_mode=mode, impacted=impacted)


def reach_warning(drill_plan: planning.Plan, catalog: cmdb_models.Catalog | None) -> str | None:
    """A warning when the drill reaches no CMDB service (so no coverage cell will count it)."""
    if catalog is None or drill_plan.impact is None or drill_plan.impact.services:
        return None
    drill = drill_plan.drill
    return (
        f"{drill.scenario_source}: spec.targets: scenario {drill.scenario.metadata.name} reaches"
        " no CMDB service, so coverage will not count its runs; list them in spec.services,"
        " or link the targets in the CMDB (backstage.io/kubernetes-label-selector or"
        " kubernetes-id, stormdrill.dev/aws-tags or aws-resources, stormdrill.dev/vendor-cidrs)"
    )


def _cell(
    *,
    catalog: cmdb_models.Catalog,
    service: cmdb_models.Service,
    mode: str,
    runs: Sequence[RunSummary],
    rules: policy.CoveragePolicy,
    now: dt.datetime,
) -> Cell:
    need = rules.requirement(tier=service.tier, mode=mode)
    applicable, why_not = _applicable(catalog, service, mode)
    target = service.objectives.rto_for(mode.partition(":")[0])
    target_s = target.total_seconds() if target is not None else None
    blank = Cell(
        service=str(service.ref),
        mode=mode,
        state=CellState.NOT_APPLICABLE,
        required=False,
        rules=(),
        window_days=need.window.total_seconds() / 86400,
        scenarios=(),
        last_run=None,
        last_run_at=None,
        last_result=None,
        achieved_rto_s=None,
        target_rto_s=target_s,
        why=why_not,
        open_actions=0,
    )
    if not applicable:
        return blank
    covering = sorted(
        (r for r in runs if _covers(r, service, mode)), key=lambda r: r.finished_at, reverse=True
    )
    base = dataclasses.replace(
        blank,
        required=need.required,
        rules=need.rules,
        scenarios=tuple(sorted({r.scenario for r in covering})),
        state=CellState.NOT_RUN,
        why="no run covers it",
    )
    if not covering:
        return base
    conclusive = [r for r in covering if r.inconclusive is None]
    if not conclusive:
        latest = covering[0]
        return dataclasses.replace(
            base,
            state=CellState.INCONCLUSIVE,
            why=f"{len(covering)} covering run(s), none conclusive; the latest was "
            f"{latest.inconclusive}",
            last_run=latest.run_id,
            last_run_at=latest.finished_at,
            last_result=latest.result,
            inconclusive_runs=len(covering),
        )
    latest = conclusive[0]
    later = sum(
        1 for r in covering if r.inconclusive is not None and r.finished_at > latest.finished_at
    )
    state, why = _judge(latest, service, target_s=target_s, window=need.window, now=now)
    if later:
        why += f"; {later} later run(s) inconclusive"
    return dataclasses.replace(
        base,
        state=state,
        why=why,
        last_run=latest.run_id,
        last_run_at=latest.finished_at,
        last_result=latest.result,
        achieved_rto_s=latest.achieved_rto_s,
        open_actions=0
        if state is CellState.PASSED
        else latest.open_actions.get(service.ref.short, 0),
        inconclusive_runs=later,
    )


def _judge(
    run: RunSummary,
    service: cmdb_models.Service,
    *,
    target_s: float | None,
    window: dt.timedelta,
    now: dt.datetime,
) -> tuple[CellState, str]:
    if not run.passed:
        return CellState.FAILED, f"latest run ended {run.result}"
    if target_s is not None and run.achieved_rto_s is not None and run.achieved_rto_s > target_s:
        return (
            CellState.FAILED,
            f"achieved RTO {run.achieved_rto_s:.1f} s exceeds the target {target_s:.0f} s",
        )
    age = now - run.finished_at
    if age > window:
        return (
            CellState.EXPIRED,
            f"passed {age.days} d ago; the window is {window.days} d (stale by time)",
        )
    recorded = run.fingerprints.get(str(service.ref))
    if recorded is not None and recorded != fingerprints.of_service(service):
        return CellState.EXPIRED, "the CMDB entry changed since the pass (stale by change)"
    return CellState.PASSED, f"passed {age.days} d ago"


def _rollup(label: str, cells: Iterable[Cell]) -> Rollup:
    required = [c for c in cells if c.required and c.state is not CellState.NOT_APPLICABLE]
    if not required:
        return Rollup(label=label, required=0, fresh=0, score=None)
    fresh = sum(1 for c in required if c.state is CellState.PASSED)
    score = sum(WEIGHTS[c.state] for c in required) / len(required)
    return Rollup(label=label, required=len(required), fresh=fresh, score=round(score, 1))


def build_matrix(
    *,
    catalog: cmdb_models.Catalog,
    rules: policy.CoveragePolicy,
    runs: Sequence[RunSummary],
    now: dt.datetime,
    extra_modes: Iterable[str] = (),
) -> Matrix:
    """The coverage matrix of `catalog` under `rules` given the finished `runs`."""
    modes = modes_for(catalog, [*extra_modes, *(r.failure_mode for r in runs)])
    services = sorted(
        catalog.services.values(),
        key=lambda s: (s.system is None, s.system.short if s.system else "", s.tier, s.ref.short),
    )
    rows = tuple(
        Row(
            ref=str(s.ref),
            name=s.ref.short,
            system=s.system.short if s.system else None,
            tier=s.tier,
            owner=s.owner.short,
            cells=tuple(
                _cell(catalog=catalog, service=s, mode=m, runs=runs, rules=rules, now=now)
                for m in modes
            ),
        )
        for s in services
    )
    groups: dict[str, dict[str, list[Cell]]] = {
        "tier": collections.defaultdict(list),
        "system": collections.defaultdict(list),
        "mode": collections.defaultdict(list),
    }
    for row in rows:
        for cell in row.cells:
            groups["tier"][f"tier {row.tier}"].append(cell)
            groups["system"][row.system or "(no system)"].append(cell)
            groups["mode"][cell.mode].append(cell)
    return Matrix(
        generated_at=now,
        policy=rules.name,
        modes=modes,
        rows=rows,
        overall=_rollup("all", (c for row in rows for c in row.cells)),
        by_tier=tuple(_rollup(k, v) for k, v in sorted(groups["tier"].items())),
        by_system=tuple(_rollup(k, v) for k, v in sorted(groups["system"].items())),
        by_mode=tuple(_rollup(m, groups["mode"][m]) for m in modes),
    )
