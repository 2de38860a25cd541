"""Coverage: which CMDB services have been drilled for which failure modes, and how well.

The matrix has a row per CMDB service (grouped by system, sorted by tier then name) and a
column per failure mode: `availability-zone`, `region`, `third-party:<vendor>` for each
vendor in the catalog, `dependency`, `key-person`, plus any mode a scenario declares.

A cell's state, from the latest finished run that covers it (refused runs touched
nothing and do not count):
- NOT_APPLICABLE: the mode cannot hit the service (a vendor has no zones; a service with
  no dependency has no dependency to lose; `third-party:V` only where V is reached).
- NOT_RUN: no run covers it.
- FAILED: the latest covering run did not pass (hypothesis deviated, aborted, failed,
  rollback failed) or it missed the service's RTO for that mode (achieved RTO divided by
  the run's time scale, against the CMDB objective).
- EXPIRED: the latest covering run passed, but longer ago than the policy window for the
  service's tier ("by time"), or the service's CMDB entry changed since ("by change": its
  `fingerprints.of_service` hash differs from the one recorded with the run; a run with
  no recorded hash is judged by time only).
- PASSED: otherwise.
A run covers (service, mode) when its failure mode is the mode's and the service is in
the run's impact; for `dependency` the service must be downstream of the target (it is
the one losing a dependency); for `third-party:V` the vendor V must be in the impact too.

Roll-ups count required cells only: the share with a fresh pass, and a score averaging
PASSED 100, EXPIRED 75, FAILED 50, NOT_RUN 0 (Gremlin's reliability-score weighting).
Pure functions: the clock, catalog, policy and run summaries are passed in.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence

from orchestrator import journal, states
from orchestrator.cmdb import models as cmdb_models
from reports import evidence, fingerprints, policy, postmortem

log = logging.getLogger(__name__)

BASE_MODES: tuple[str, ...] = ("availability-zone", "region", "dependency", "key-person")
THIRD_PARTY = "third-party"


class CellState(enum.StrEnum):
    PASSED = "PASSED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    NOT_RUN = "NOT_RUN"
    NOT_APPLICABLE = "NOT_APPLICABLE"


WEIGHTS: Mapping[CellState, int] = {
    CellState.PASSED: 100,
    CellState.EXPIRED: 75,
    CellState.FAILED: 50,
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


def summarise(
    run_evidence: evidence.RunEvidence,
    *,
    failure_mode: str,
    catalog: cmdb_models.Catalog | None,
) -> RunSummary | None:
    """The coverage view of one run; None for runs that never touched anything."""
    run = run_evidence.run
    if not run.terminal or run.finished_at is None or run.record.get("refused") is True:
        return None
    impacted: dict[str, int] = {}
    for row in evidence.record_list(run.record, "impact"):
        if isinstance(row, Mapping) and isinstance(row.get("ref"), str):
            distance = row.get("distance")
            impacted[str(row["ref"])] = distance if isinstance(distance, int) else 0
    facts = evidence.facts(run_evidence)
    recorded = facts.get("fingerprints")
    hashes = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, Mapping) else {}
    objectives = evidence.record_object(run.record, "objectives")
    achieved = evidence.record_number(objectives, "achieved_rto_s")
    scale = evidence.record_number(run.record, "time_scale") or 1.0
    passed = run.state is states.RunState.COMPLETED and run.verdict is states.Verdict.HELD
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
        result=f"{run.state.value}/{verdict}",
        impacted=impacted,
        fingerprints=hashes,
        achieved_rto_s=None if achieved is None else achieved / scale,
        open_actions=open_actions,
    )


def load_summaries(
    store: journal.Journal, *, catalog: cmdb_models.Catalog | None, limit: int | None = 1000
) -> list[RunSummary]:
    """Summaries of the finished runs in `store` (newest first)."""
    found: list[RunSummary] = []
    for run in store.list_runs(states_in=states.TERMINAL, limit=limit):
        if run.record.get("refused") is True:
            continue
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
    latest = covering[0]
    state, why = _judge(latest, service, target_s=target_s, window=need.window, now=now)
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
