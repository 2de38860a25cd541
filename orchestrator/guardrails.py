"""Guardrails: the rules that decide whether a drill may start, and keep running.

Each rule is a small function of the facts it needs that returns `GuardrailVerdict`s
(one per subject where that helps a person: a namespace, a target, a service). A verdict
that is not `ok` is a refusal; the engine refuses to start a plan with any refusal and
aborts a running drill on one. `evaluate_plan` runs every plan-time rule over `PlanFacts`.

Invariants:
- Rules fail closed: a fact that cannot be established (a namespace whose labels cannot be
  read, a target without a selection, a protected environment without a CMDB) refuses.
- Rules never change anything, except `acquire_targets`, which takes the journal's
  one-drill-per-target locks (all or nothing) and reports conflicts as refusals.
- Every time given to a rule is timezone-aware; a naive one is a bug (ValueError).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from orchestrator import errors, journal, mutations, states, targets
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from scenarios import models, quantities

log = logging.getLogger(__name__)

OPT_IN_LABEL = "stormdrill.dev/allow-drills"
"""The namespace label (value `true`) that opts a namespace in to drills."""

OptedIn = Callable[[Sequence[str]], Collection[str]]
"""Given namespaces, the ones labelled `stormdrill.dev/allow-drills=true` (Kubernetes provider)."""


class Rule(enum.StrEnum):
    """The guardrail rules, as named in verdicts, events and reports."""

    ENVIRONMENT = "environment"
    FAILURE_MODE = "failure-mode"
    APPROVALS = "approvals"
    NAMESPACE_OPT_IN = "namespace-opt-in"
    BLAST_RADIUS = "blast-radius"
    MAX_SERVICES = "max-services"
    MAX_TIER = "max-tier"
    ORCHESTRATOR = "orchestrator-self"
    WINDOW = "window"
    FREEZE = "freeze"
    KILLSWITCH = "killswitch"
    MAX_DURATION = "max-duration"
    OVERLAP = "overlap"


@dataclasses.dataclass(frozen=True)
class GuardrailVerdict:
    """One rule's judgement of one subject: `ok`, or a refusal with the reason and the fix."""

    rule: str
    ok: bool
    message: str
    subject: str = ""

    def __str__(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        return f"{'ok' if self.ok else 'REFUSED'} {self.rule}{where}: {self.message}"


def _ok(rule: Rule, message: str, subject: str = "") -> GuardrailVerdict:
    return GuardrailVerdict(rule=rule, ok=True, message=message, subject=subject)


def _refuse(rule: Rule, message: str, subject: str = "") -> GuardrailVerdict:
    return GuardrailVerdict(rule=rule, ok=False, message=message, subject=subject)


def refusals(verdicts: Iterable[GuardrailVerdict]) -> list[GuardrailVerdict]:
    """The verdicts that refuse."""
    return [verdict for verdict in verdicts if not verdict.ok]


def raise_refusals(verdicts: Iterable[GuardrailVerdict]) -> None:
    """Raise `GuardrailTripped` (first refusing rule, every refusal listed) if any refuses."""
    refused = refusals(verdicts)
    if refused:
        message = "; ".join(f"{v.subject + ': ' if v.subject else ''}{v.message}" for v in refused)
        raise errors.GuardrailTripped(refused[0].rule, message)


def _aware(value: datetime.datetime, *, what: str) -> datetime.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value


# ---- environment, failure mode, approvals ----------------------------------------------------


def check_environment(
    scenario: models.Scenario, environment: models.Environment
) -> list[GuardrailVerdict]:
    """The environment is in the scenario's allow-list and allows its failure mode."""
    name = environment.metadata.name
    allowed = scenario.spec.guardrails.environments
    verdicts: list[GuardrailVerdict] = []
    if name in allowed:
        verdicts.append(_ok(Rule.ENVIRONMENT, f"environment {name} is allowed", name))
    else:
        verdicts.append(
            _refuse(
                Rule.ENVIRONMENT,
                f"scenario {scenario.metadata.name} may run only in {', '.join(allowed)}, "
                f"not in {name} (add it to spec.guardrails.environments if it is meant to)",
                name,
            )
        )
    mode = scenario.spec.failure_mode
    modes = environment.spec.allowed_failure_modes
    if modes is None or mode in modes:
        verdicts.append(_ok(Rule.FAILURE_MODE, f"failure mode {mode.value} is allowed", name))
    else:
        shown = ", ".join(m.value for m in modes) or "none"
        verdicts.append(
            _refuse(
                Rule.FAILURE_MODE,
                f"environment {name} allows failure modes {shown}, not {mode.value} "
                "(spec.allowedFailureModes of the environment)",
                name,
            )
        )
    return verdicts


def approvers(
    recorded: Iterable[models.Approval] = (), approved_by: Iterable[str] = ()
) -> tuple[str, ...]:
    """Everyone who approved: the drill's recorded approvals plus `--approved-by` names."""
    return (*(approval.by for approval in recorded), *approved_by)


def _person(raw: str) -> str:
    try:
        return str(cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.USER))
    except cmdb_errors.CmdbError:
        return raw.strip().lower()


def required_approvals(environment: models.Environment) -> int:
    """How many distinct approvers a drill needs here (at least one when protected)."""
    required = environment.spec.approvals.required
    return max(required, 1) if environment.spec.protected else required


def check_approvals(
    environment: models.Environment, approvals: Iterable[str]
) -> list[GuardrailVerdict]:
    """Enough distinct people approved (`user:default/alice` and `alice` are one person)."""
    name = environment.metadata.name
    needed = required_approvals(environment)
    people = sorted({_person(raw) for raw in approvals if raw.strip()})
    if needed == 0:
        return [_ok(Rule.APPROVALS, f"environment {name} needs no approval", name)]
    if len(people) >= needed:
        return [_ok(Rule.APPROVALS, f"approved by {', '.join(people)}", name)]
    have = f"only {', '.join(people)}" if people else "nobody"
    return [
        _refuse(
            Rule.APPROVALS,
            f"environment {name} is protected and needs {needed} approval(s); {have} approved "
            "(record approvals on the Drill or pass --approved-by)",
            name,
        )
    ]


# ---- kubernetes namespace opt-in -------------------------------------------------------------


def namespaces_of(selections: Iterable[targets.Selection]) -> list[str]:
    """The Kubernetes namespaces a plan touches: its refs' namespaces and namespace targets."""
    found: set[str] = set()
    for selection in selections:
        for ref in selection.refs:
            if ref.provider != models.Provider.KUBERNETES.value:
                continue
            if ref.kind == "namespace":
                found.add(ref.name)
            elif ref.namespace:
                found.add(ref.namespace)
    return sorted(found)


def check_namespace_opt_in(
    environment: models.Environment,
    *,
    namespaces: Iterable[str],
    opted_in: OptedIn | None,
) -> list[GuardrailVerdict]:
    """Every touched namespace is labelled `stormdrill.dev/allow-drills=true` (unless waived)."""
    wanted = sorted(set(namespaces))
    access = environment.spec.kubernetes
    if not wanted:
        return [_ok(Rule.NAMESPACE_OPT_IN, "no Kubernetes namespace is touched")]
    if access is not None and not access.require_namespace_opt_in:
        return [
            _ok(
                Rule.NAMESPACE_OPT_IN,
                f"environment {environment.metadata.name} waives namespace opt-in "
                "(kubernetes.requireNamespaceOptIn: false)",
            )
        ]
    if opted_in is None:
        return [
            _refuse(
                Rule.NAMESPACE_OPT_IN,
                f"cannot tell whether namespace {ns} opted in to drills "
                "(no Kubernetes connection to read its labels)",
                ns,
            )
            for ns in wanted
        ]
    try:
        allowed = set(opted_in(wanted))
    except errors.ProviderError as exc:
        return [
            _refuse(
                Rule.NAMESPACE_OPT_IN,
                f"cannot read the labels of namespace {ns}: {exc}",
                ns,
            )
            for ns in wanted
        ]
    return [
        _ok(Rule.NAMESPACE_OPT_IN, f"namespace {ns} opted in to drills", ns)
        if ns in allowed
        else _refuse(
            Rule.NAMESPACE_OPT_IN,
            f"namespace {ns} has not opted in to drills; label it with "
            f"`kubectl label namespace {ns} {OPT_IN_LABEL}=true` if drills are welcome there",
            ns,
        )
        for ns in wanted
    ]


# ---- blast radius, services, the orchestrator itself -----------------------------------------


def check_blast_radius(
    selection: targets.Selection,
    target: models.Target | None,
    *,
    destructive: bool,
) -> list[GuardrailVerdict]:
    """The selection is not empty and within the target's `blastRadius.max`."""
    name = selection.name
    if target is None:
        return [
            _refuse(
                Rule.BLAST_RADIUS,
                f"selection {name} has no target of that name in the scenario (a planning bug)",
                name,
            )
        ]
    of = f"{selection.count} of {selection.population} {selection.kind}(s)"
    if selection.count == 0:
        excluded = f" ({len(selection.excluded)} excluded on purpose)" if selection.excluded else ""
        return [
            _refuse(
                Rule.BLAST_RADIUS,
                f"target {name} selects nothing{excluded}: a drill that matches nothing proves "
                "nothing; check its selector and parameters",
                name,
            )
        ]
    radius = target.blast_radius
    if radius is None:
        if destructive:
            return [
                _refuse(
                    Rule.BLAST_RADIUS,
                    f"target {name} is acted on by a destructive action but has no blastRadius; "
                    f"set spec.targets.{name}.blastRadius.max",
                    name,
                )
            ]
        return [_ok(Rule.BLAST_RADIUS, f"target {name} selects {of} (no limit set)", name)]
    limit = radius.max
    if isinstance(limit, quantities.Percent):
        allowed = limit.of(selection.population)
        shown = f"{limit} (at most {allowed} of {selection.population})"
    else:
        allowed = limit
        shown = str(limit)
    if selection.count > allowed:
        return [
            _refuse(
                Rule.BLAST_RADIUS,
                f"target {name} selects {of} ({selection.percent():.0f}%), more than "
                f"blastRadius.max {shown}; narrow the selector or raise the limit",
                name,
            )
        ]
    return [_ok(Rule.BLAST_RADIUS, f"target {name} selects {of}, within {shown}", name)]


def check_services(
    guardrails: models.Guardrails,
    impacted: Sequence[cmdb_impact.ImpactedService] | None,
    *,
    protected: bool = False,
) -> list[GuardrailVerdict]:
    """`maxServices` over every impacted service, `maxTier` over the targeted ones.

    `impacted` is None when the environment has no CMDB: the limits cannot be checked,
    which refuses in a protected environment and passes (saying so) elsewhere.
    `maxTier` judges the services the drill touches directly (distance 0); dependents
    count towards `maxServices`.
    """
    if guardrails.max_services is None and guardrails.max_tier is None:
        return []
    if impacted is None:
        message = "the environment has no CMDB, so maxServices/maxTier cannot be checked"
        if protected:
            return [
                _refuse(Rule.MAX_SERVICES, message + "; configure spec.cmdb of the environment")
            ]
        return [_ok(Rule.MAX_SERVICES, message + " (allowed: the environment is not protected)")]
    verdicts: list[GuardrailVerdict] = []
    limit = guardrails.max_services
    if limit is not None:
        refs = ", ".join(str(s.ref.short) for s in impacted)
        if len(impacted) > limit:
            verdicts.append(
                _refuse(
                    Rule.MAX_SERVICES,
                    f"the drill reaches {len(impacted)} services ({refs}), more than "
                    f"maxServices {limit}; narrow the targets or raise the limit",
                )
            )
        else:
            verdicts.append(
                _ok(Rule.MAX_SERVICES, f"the drill reaches {len(impacted)} of at most {limit}")
            )
    max_tier = guardrails.max_tier
    if max_tier is not None:
        for service in impacted:
            if service.distance != 0:
                continue
            subject = str(service.ref)
            if service.tier < max_tier:
                verdicts.append(
                    _refuse(
                        Rule.MAX_TIER,
                        f"{service.ref.short} is tier {service.tier}, more critical than "
                        f"maxTier {max_tier} allows",
                        subject,
                    )
                )
            else:
                verdicts.append(
                    _ok(Rule.MAX_TIER, f"{service.ref.short} is tier {service.tier}", subject)
                )
    return verdicts


def _is_orchestrator(ref: mutations.TargetRef, identity: models.OrchestratorIdentity) -> str | None:
    if ref.provider != models.Provider.KUBERNETES.value:
        return None
    own_ns = identity.namespace
    if ref.kind == "node" and identity.node_name and ref.name == identity.node_name:
        return f"node {ref.name} runs Stormdrill itself"
    if ref.kind == "namespace" and own_ns and ref.name == own_ns:
        return f"namespace {ref.name} is where Stormdrill runs"
    same_ns = own_ns is None or ref.namespace == own_ns
    if ref.kind == "pod" and identity.pod_name and ref.name == identity.pod_name and same_ns:
        return f"pod {ref.name} is Stormdrill itself"
    if ref.kind != "node" and own_ns and ref.namespace == own_ns:
        return f"{ref.kind} {ref.name} lives in Stormdrill's own namespace {own_ns}"
    return None


def check_not_orchestrator(
    selection: targets.Selection, environment: models.Environment
) -> list[GuardrailVerdict]:
    """No ref of the selection is the orchestrator's pod, node or namespace."""
    identity = environment.spec.orchestrator
    if identity is None:
        return [_ok(Rule.ORCHESTRATOR, "the orchestrator's location is not declared", "")]
    hits = [(ref, why) for ref in selection.refs if (why := _is_orchestrator(ref, identity))]
    if not hits:
        return [_ok(Rule.ORCHESTRATOR, f"target {selection.name} spares Stormdrill", "")]
    return [
        _refuse(
            Rule.ORCHESTRATOR,
            f"target {selection.name} includes {why}; a drill never targets its own "
            "orchestrator (narrow the selector)",
            ref.key,
        )
        for ref, why in hits
    ]


# ---- time: windows, freezes, deadline --------------------------------------------------------

_WEEKDAYS: tuple[models.Weekday, ...] = tuple(models.Weekday)


def in_window(window: models.Window, now: datetime.datetime) -> bool:
    """Whether `now` falls in `window` (opening on its days; `end` < `start` spans midnight)."""
    local = _aware(now, what="now").astimezone(zoneinfo.ZoneInfo(window.timezone))
    clock = local.time().replace(tzinfo=None)
    today = _WEEKDAYS[local.weekday()]
    yesterday = _WEEKDAYS[(local.weekday() - 1) % 7]
    if window.start < window.end:
        return today in window.days and window.start <= clock < window.end
    return (today in window.days and clock >= window.start) or (
        yesterday in window.days and clock < window.end
    )


def _describe_window(window: models.Window) -> str:
    days = ",".join(d.value for d in window.days)
    return f"{days} {window.start:%H:%M}-{window.end:%H:%M} {window.timezone}"


def check_windows(
    windows: Sequence[models.Window], now: datetime.datetime
) -> list[GuardrailVerdict]:
    """`now` falls in one of the scenario's windows (no windows: any time)."""
    _aware(now, what="now")
    if not windows:
        return [_ok(Rule.WINDOW, "the scenario has no time windows")]
    for window in windows:
        if in_window(window, now):
            return [_ok(Rule.WINDOW, f"inside the window {_describe_window(window)}")]
    shown = "; ".join(_describe_window(window) for window in windows)
    return [
        _refuse(
            Rule.WINDOW,
            f"{now.isoformat()} is outside every window of the scenario ({shown}); "
            "run it inside one",
        )
    ]


def check_freezes(
    freezes: Sequence[models.Freeze], now: datetime.datetime
) -> list[GuardrailVerdict]:
    """`now` is in no change freeze of the environment."""
    _aware(now, what="now")
    active = [freeze for freeze in freezes if freeze.start <= now < freeze.end]
    if not active:
        return [_ok(Rule.FREEZE, "no change freeze is in effect")]
    return [
        _refuse(
            Rule.FREEZE,
            f"change freeze '{freeze.reason}' is in effect until {freeze.end.isoformat()}",
            freeze.reason,
        )
        for freeze in active
    ]


def deadline(
    started_at: datetime.datetime, max_duration: quantities.Duration, time_scale: float
) -> datetime.datetime:
    """When a run started at `started_at` must be over (`maxDuration` scaled by time scale)."""
    _aware(started_at, what="started_at")
    return started_at + datetime.timedelta(seconds=max_duration.seconds * time_scale)


def check_deadline(
    deadline_at: datetime.datetime,
    now: datetime.datetime,
    *,
    max_duration: quantities.Duration | None = None,
) -> GuardrailVerdict:
    """The run is still within its `maxDuration`."""
    _aware(now, what="now")
    limit = f"maxDuration {max_duration}" if max_duration is not None else "its maxDuration"
    if now >= _aware(deadline_at, what="deadline"):
        over = (now - deadline_at).total_seconds()
        return _refuse(
            Rule.MAX_DURATION,
            f"the run exceeded {limit} (deadline {deadline_at.isoformat()}, {over:.1f}s ago)",
        )
    left = (deadline_at - now).total_seconds()
    return _ok(Rule.MAX_DURATION, f"{left:.1f}s left of {limit}")


# ---- kill switch, overlap --------------------------------------------------------------------


def killswitch_files(environment: models.Environment, extra: Path | None = None) -> list[Path]:
    """The kill-switch files to watch: the environment's and one set by settings."""
    return [p for p in (environment.spec.kill_switch_file, extra) if p is not None]


def check_killswitch(
    state: journal.Killswitch, *, files: Iterable[Path] = ()
) -> list[GuardrailVerdict]:
    """Neither the journal's kill switch is engaged nor any kill-switch file exists."""
    verdicts: list[GuardrailVerdict] = []
    if state.engaged:
        by = f" by {state.by}" if state.by else ""
        why = f": {state.reason}" if state.reason else ""
        verdicts.append(
            _refuse(
                Rule.KILLSWITCH,
                f"the kill switch is engaged{by}{why} (release it with `stormdrill killswitch "
                "off` once it is safe)",
                "journal",
            )
        )
    for path in files:
        if path.exists():
            verdicts.append(
                _refuse(
                    Rule.KILLSWITCH,
                    f"the kill-switch file {path} exists (remove it once it is safe)",
                    str(path),
                )
            )
    return verdicts or [_ok(Rule.KILLSWITCH, "the kill switch is off")]


def acquire_targets(
    store: journal.Journal, run_id: states.RunId, keys: Iterable[str]
) -> list[GuardrailVerdict]:
    """Lock `keys` for `run_id` (all or nothing); a refusal per other run holding any."""
    wanted = sorted(set(keys))
    conflicts = store.acquire_targets(run_id, wanted)
    if not conflicts:
        return [_ok(Rule.OVERLAP, f"holds {len(wanted)} target lock(s)")]
    by_run: dict[str, list[str]] = {}
    for conflict in conflicts:
        by_run.setdefault(conflict.run_id, []).append(conflict.key)
    return [
        _refuse(
            Rule.OVERLAP,
            f"run {other} is drilling {len(keys_held)} of the same target(s) "
            f"({', '.join(keys_held)}); one drill at a time per target — wait for it to end "
            "(or `stormdrill recover` if it crashed)",
            other,
        )
        for other, keys_held in sorted(by_run.items())
    ]


# ---- a whole plan ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RuntimeFacts:
    """What the world says at plan time: the clock, the kill switch, namespace labels."""

    now: datetime.datetime
    killswitch: journal.Killswitch
    opted_in: OptedIn | None = None
    extra_killswitch_file: Path | None = None


@dataclasses.dataclass(frozen=True)
class PlanFacts:
    """Everything the plan-time rules judge."""

    scenario: models.Scenario
    environment: models.Environment
    selections: Mapping[str, targets.Selection]
    runtime: RuntimeFacts
    approvals: tuple[str, ...] = ()
    """Who approved: the drill's recorded approvals and `--approved-by` (see `approvers`)."""
    destructive_targets: frozenset[str] = frozenset()
    """Names of targets a destructive action acts on (they need a blast radius)."""
    impacted: Sequence[cmdb_impact.ImpactedService] | None = ()
    """Targeted services and their dependents; None when the environment has no CMDB."""


def evaluate_plan(facts: PlanFacts) -> list[GuardrailVerdict]:
    """Every plan-time rule over `facts`: the ok verdicts and the refusals, in rule order."""
    scenario, environment, runtime = facts.scenario, facts.environment, facts.runtime
    spec = scenario.spec
    verdicts = [
        *check_environment(scenario, environment),
        *check_approvals(environment, facts.approvals),
        *check_killswitch(
            runtime.killswitch,
            files=killswitch_files(environment, runtime.extra_killswitch_file),
        ),
        *check_windows(spec.guardrails.windows, runtime.now),
        *check_freezes(environment.spec.freezes, runtime.now),
    ]
    for name, selection in sorted(facts.selections.items()):
        verdicts.extend(
            check_blast_radius(
                selection,
                spec.targets.get(name),
                destructive=name in facts.destructive_targets,
            )
        )
        verdicts.extend(check_not_orchestrator(selection, environment))
    for name in sorted(set(spec.targets) - set(facts.selections)):
        verdicts.append(
            _refuse(Rule.BLAST_RADIUS, f"target {name} was not resolved (a planning bug)", name)
        )
    verdicts.extend(
        check_namespace_opt_in(
            environment,
            namespaces=namespaces_of(facts.selections.values()),
            opted_in=runtime.opted_in,
        )
    )
    verdicts.extend(
        check_services(spec.guardrails, facts.impacted, protected=environment.spec.protected)
    )
    for verdict in refusals(verdicts):
        log.info("guardrail refused %s: %s", scenario.metadata.name, verdict)
    return verdicts
