"""Guardrails: the rules that decide whether a drill may start, and keep running.

Each rule is a small function of the facts it needs that returns `GuardrailVerdict`s
(one per subject where that helps a person: a namespace, a target, a service). A verdict
that is not `ok` is a refusal; the engine refuses to start a plan with any refusal and
aborts a running drill on one. `evaluate_plan` runs every plan-time rule over `PlanFacts`.

Rules judge what the plan will really change, not only what its targets name: the planned
mutations' objects (a subject revoke's RoleBindings, a drain's node) and what they touch on
the way (`pre_state["touches"]`: the pods a drain evicts). An action that finds a reason to
refuse while planning lists it in `pre_state["refusals"]` (`{rule, subject, message}`).

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

from orchestrator import errors, journal, mutations, records, states, targets
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
    CLUSTER_SCOPE = "cluster-scope"
    PROTECTED_PRINCIPAL = "protected-principal"
    UNOWNED_PODS = "unowned-pods"


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


SCHEDULE_PRINCIPAL = "schedule:"
"""A schedule's fire is submitted with the trigger principal `schedule:NAME`."""


def schedule_of(trigger: records.Trigger | None) -> str | None:
    """The schedule whose fire a run is (its trigger: kind `schedule`, principal
    `schedule:NAME`): NAME, `NAME` itself when the principal names none; None for a run
    anything else submitted."""
    if trigger is None or trigger.kind is not records.TriggerKind.SCHEDULE:
        return None
    name = trigger.principal.strip().removeprefix(SCHEDULE_PRINCIPAL).strip()
    return name or "NAME"


def approvals_fix(schedule: str | None = None) -> str:
    """How to give a refused drill its approvals: on the Drill or with `--approved-by`; for
    a schedule's fire, the schedule's own approval (`stormdrill schedules approve NAME`),
    the only approvals its fires carry."""
    if schedule is not None:
        return f"approve the schedule: stormdrill schedules approve {schedule}"
    return "record approvals on the Drill or pass --approved-by"


def check_approvals(
    environment: models.Environment,
    approvals: Iterable[str],
    *,
    schedule: str | None = None,
) -> list[GuardrailVerdict]:
    """Enough distinct people approved (`user:default/alice` and `alice` are one person).

    `schedule` names the schedule whose fire is judged (see `schedule_of`): a refusal then
    says how to approve that schedule instead of `--approved-by` (`approvals_fix`)."""
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
            f"({approvals_fix(schedule)})",
            name,
        )
    ]


# ---- kubernetes namespace opt-in -------------------------------------------------------------


CLUSTER_RBAC_KINDS = frozenset({"clusterrolebinding", "clusterrole"})
"""Cluster-wide objects a drill may change only where the Environment allows cluster scope."""

_KUBE = models.Provider.KUBERNETES.value


def touched_refs(mutation: mutations.PlannedMutation) -> list[mutations.TargetRef]:
    """What `mutation` changes besides its target (`pre_state["touches"]`: evicted pods)."""
    raw = mutation.pre_state.get("touches")
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    found = []
    for item in raw:
        if isinstance(item, Mapping) and "provider" in item and "kind" in item and "name" in item:
            found.append(mutations.TargetRef.from_json(item))
    return found


def _namespace_of(ref: mutations.TargetRef) -> str | None:
    if ref.provider != _KUBE:
        return None
    if ref.kind == "namespace":
        return ref.name
    return ref.namespace or None


def namespaces_of(
    selections: Iterable[targets.Selection],
    planned: Iterable[mutations.PlannedMutation] = (),
    *,
    evictable: Collection[str] = (),
) -> list[str]:
    """The Kubernetes namespaces a plan touches (see `namespace_reasons`)."""
    return sorted(namespace_reasons(selections, planned, evictable=evictable))


def namespace_reasons(
    selections: Iterable[targets.Selection],
    planned: Iterable[mutations.PlannedMutation] = (),
    *,
    evictable: Collection[str] = (),
) -> dict[str, list[str]]:
    """Each touched Kubernetes namespace and what touches it, for a person to read.

    Touched: the namespaces of the selections' refs (and namespace targets), of every
    planned mutation's object, and of the pods a mutation evicts on the way, except the
    pods a drain evicts (touched, or deleted as unowned: `pre_state["drainedFrom"]`) in
    namespaces of `evictable` (the Environment's `kubernetes.allowEvictionIn`).
    """
    found: dict[str, list[str]] = {}
    for selection in selections:
        for ref in selection.refs:
            ns = _namespace_of(ref)
            if ns is not None:
                found.setdefault(ns, []).append(f"target {selection.name}: {ref.kind} {ref.name}")
    for mutation in planned:
        ns = _namespace_of(mutation.target)
        drained = mutation.target.kind == "pod" and bool(mutation.pre_state.get("drainedFrom"))
        if ns is not None and not (drained and ns in evictable):
            found.setdefault(ns, []).append(
                f"{mutation.action} changes {mutation.target.kind} {ns}/{mutation.target.name}"
            )
        for ref in touched_refs(mutation):
            ns = _namespace_of(ref)
            if ns is None or (ref.kind == "pod" and ns in evictable):
                continue
            found.setdefault(ns, []).append(
                f"{mutation.action} on {mutation.target.kind} {mutation.target.name} evicts"
                f" {ref.kind} {ns}/{ref.name}"
            )
    return {ns: list(dict.fromkeys(why)) for ns, why in found.items()}


def _listed(items: Sequence[str], *, limit: int = 8) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def check_namespace_opt_in(
    environment: models.Environment,
    *,
    namespaces: Iterable[str],
    opted_in: OptedIn | None,
    reasons: Mapping[str, Sequence[str]] | None = None,
) -> list[GuardrailVerdict]:
    """Every touched namespace is labelled `stormdrill.dev/allow-drills=true` (unless waived).

    `reasons` (namespace → what the plan does there) is named in each refusal.
    """
    wanted = sorted(set(namespaces))

    def why(ns: str) -> str:
        listed = (reasons or {}).get(ns) or []
        return f" (the plan: {_listed(listed)})" if listed else ""

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
        if errors.is_infrastructure(exc):
            raise  # the API could not be read: "unreachable" (exit 5), not "refused" (exit 3)
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
            f"namespace {ns} has not opted in to drills{why(ns)}; label it with "
            f"`kubectl label namespace {ns} {OPT_IN_LABEL}=true` if drills are welcome there,"
            " or narrow the target (a subject target takes `namespaces:`)",
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


def check_mutations_not_orchestrator(
    planned: Iterable[mutations.PlannedMutation], environment: models.Environment
) -> list[GuardrailVerdict]:
    """No planned mutation changes (or evicts) Stormdrill's pod, node or namespace."""
    identity = environment.spec.orchestrator
    if identity is None:
        return []
    verdicts = []
    for mutation in planned:
        for ref in (mutation.target, *touched_refs(mutation)):
            why = _is_orchestrator(ref, identity)
            if why is None:
                continue
            verdicts.append(
                _refuse(
                    Rule.ORCHESTRATOR,
                    f"{mutation.action} on {mutation.target.kind} {mutation.target.name} would"
                    f" change {why}; a drill never touches its own orchestrator (narrow the"
                    " target; a subject target takes `namespaces:`)",
                    ref.key,
                )
            )
    return verdicts


def check_cluster_scope(
    environment: models.Environment, planned: Iterable[mutations.PlannedMutation]
) -> list[GuardrailVerdict]:
    """Cluster-wide RBAC objects change only where `kubernetes.allowClusterScope: true`."""
    found = [
        m for m in planned if m.target.provider == _KUBE and m.target.kind in CLUSTER_RBAC_KINDS
    ]
    if not found:
        return []
    access = environment.spec.kubernetes
    name = environment.metadata.name
    if access is not None and access.allow_cluster_scope:
        return [
            _ok(
                Rule.CLUSTER_SCOPE,
                f"environment {name} allows cluster-wide changes ({m.target.kind} {m.target.name})",
                m.target.key,
            )
            for m in found
        ]
    return [
        _refuse(
            Rule.CLUSTER_SCOPE,
            f"{m.action} would change {m.target.kind} {m.target.name}, which is cluster-wide;"
            f" environment {name} does not allow cluster scope (set"
            " spec.kubernetes.allowClusterScope: true if it is meant to, or narrow the target"
            " to namespaces with `namespaces:`)",
            m.target.key,
        )
        for m in found
    ]


def check_action_refusals(planned: Iterable[mutations.PlannedMutation]) -> list[GuardrailVerdict]:
    """The refusals actions found while planning (`pre_state["refusals"]`), as verdicts."""
    verdicts = []
    for mutation in planned:
        raw = mutation.pre_state.get("refusals")
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            continue
        for item in raw:
            if not isinstance(item, Mapping):
                continue
            rule = str(item.get("rule") or Rule.BLAST_RADIUS)
            verdicts.append(
                GuardrailVerdict(
                    rule=rule,
                    ok=False,
                    message=str(item.get("message") or f"{mutation.action} refused"),
                    subject=str(item.get("subject") or mutation.target.key),
                )
            )
    return verdicts


# ---- protected principals --------------------------------------------------------------------

_SUBJECT_KINDS = {"user": "User", "group": "Group", "serviceaccount": "ServiceAccount"}
SYSTEM_SERVICE_ACCOUNT_NAMESPACES = ("kube-system",)


def _subject(text: str) -> tuple[str, str | None, str]:
    """`User:alice` → (User, None, alice); `ServiceAccount:ns/name` → (ServiceAccount, ns, name)."""
    kind_text, sep, rest = text.strip().partition(":")
    if not sep:
        return "User", None, text.strip()
    kind = _SUBJECT_KINDS.get(kind_text.strip().lower(), kind_text.strip())
    if kind == "ServiceAccount":
        namespace, slash, name = rest.partition("/")
        return (kind, namespace, name) if slash else (kind, None, rest)
    return kind, None, rest.strip()


def _subject_text(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}:{namespace}/{name}" if namespace else f"{kind}:{name}"


def kubernetes_protection(
    subject: str,
    environment: models.Environment,
    *,
    break_glass: Mapping[str, Sequence[str]],
) -> str | None:
    """Why the RBAC subject `subject` must never be revoked, or None."""
    kind, namespace, name = _subject(subject)
    if name.startswith("system:"):
        return "a system subject (system:*) the cluster itself relies on"
    identity = environment.spec.orchestrator
    own = identity.namespace if identity is not None else None
    if kind == "ServiceAccount" and namespace is not None:
        if namespace in SYSTEM_SERVICE_ACCOUNT_NAMESPACES:
            return f"a ServiceAccount of {namespace}"
        if own and namespace == own:
            return f"a ServiceAccount of Stormdrill's own namespace {own}"
    if kind == "User" and name in break_glass:
        return f"a break-glass holder in the CMDB (for {', '.join(break_glass[name])})"
    access = environment.spec.kubernetes
    listed = {_subject_text(*_subject(p)) for p in (access.protected_principals if access else ())}
    if _subject_text(kind, namespace, name) in listed:
        return "listed in the Environment's spec.kubernetes.protectedPrincipals"
    return None


def aws_protection(
    user: str, environment: models.Environment, *, break_glass: Mapping[str, Sequence[str]]
) -> str | None:
    """Why the IAM user `user` must never lose access, or None (tags are the provider's)."""
    if user in break_glass:
        return f"a break-glass holder in the CMDB (for {', '.join(break_glass[user])})"
    access = environment.spec.aws
    for listed in access.protected_principals if access else ():
        if listed == user or listed.endswith(f":user/{user}") or listed.endswith(f"/{user}"):
            return "listed in the Environment's spec.aws.protectedPrincipals"
    return None


def _principals(
    selections: Iterable[targets.Selection], planned: Iterable[mutations.PlannedMutation]
) -> list[tuple[str, str, str]]:
    """(provider, principal, where) for every principal the plan takes access from."""
    found: list[tuple[str, str, str]] = []
    for selection in selections:
        for ref in selection.refs:
            if ref.provider == _KUBE and ref.kind == "subject":
                found.append((_KUBE, ref.name, f"target {selection.name}"))
            elif ref.provider == models.Provider.AWS.value and ref.kind == "iam-user":
                found.append((ref.provider, ref.name, f"target {selection.name}"))
    for mutation in planned:
        subject = mutation.pre_state.get("subject")
        if mutation.target.provider == _KUBE and isinstance(subject, str):
            where = f"{mutation.action} on {mutation.target.kind} {mutation.target.name}"
            found.append((_KUBE, subject, where))
        elif mutation.target.provider == models.Provider.AWS.value and (
            mutation.target.kind == "iam-user"
        ):
            found.append((mutation.target.provider, mutation.target.name, mutation.action))
    return found


def check_protected_principals(
    environment: models.Environment,
    *,
    selections: Iterable[targets.Selection],
    planned: Iterable[mutations.PlannedMutation],
    break_glass: Mapping[str, Sequence[str]],
) -> list[GuardrailVerdict]:
    """No plan takes access from a protected principal, on Kubernetes or AWS.

    Protected: the CMDB's break-glass holders (by user name) on both providers; the
    Environment's `spec.kubernetes.protectedPrincipals` and `spec.aws.protectedPrincipals`;
    always, system subjects (`system:*`) and ServiceAccounts of kube-system and of
    Stormdrill's own namespace.
    """
    seen: dict[tuple[str, str], list[str]] = {}
    for provider, principal, where in _principals(selections, planned):
        seen.setdefault((provider, principal), []).append(where)
    verdicts = []
    for (provider, principal), places in sorted(seen.items()):
        why = (
            kubernetes_protection(principal, environment, break_glass=break_glass)
            if provider == _KUBE
            else aws_protection(principal, environment, break_glass=break_glass)
        )
        subject = f"{provider} {principal}"
        if why is None:
            verdicts.append(_ok(Rule.PROTECTED_PRINCIPAL, f"{principal} is not protected", subject))
            continue
        verdicts.append(
            _refuse(
                Rule.PROTECTED_PRINCIPAL,
                f"{principal} ({provider}) is {why}; a drill never takes its access away"
                f" ({_listed(list(dict.fromkeys(places)))}); pick another principal",
                subject,
            )
        )
    return verdicts


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
    """What the world says at plan time: the clock, the kill switch, namespace labels (and
    what submitted the run)."""

    now: datetime.datetime
    killswitch: journal.Killswitch
    opted_in: OptedIn | None = None
    extra_killswitch_file: Path | None = None
    trigger: records.Trigger | None = None
    """What submitted the run being planned (its record's trigger; None for a plan
    only): a schedule's fire is told to approve the schedule (`check_approvals`)."""


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
    planned: tuple[mutations.PlannedMutation, ...] = ()
    """Every mutation the plan would make (what the namespace, orchestrator, cluster-scope
    and protected-principal rules judge, with the selections)."""
    break_glass: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """CMDB break-glass holders: user name → the services they hold it for."""


def evaluate_plan(facts: PlanFacts) -> list[GuardrailVerdict]:
    """Every plan-time rule over `facts`: the ok verdicts and the refusals, in rule order."""
    scenario, environment, runtime = facts.scenario, facts.environment, facts.runtime
    spec = scenario.spec
    verdicts = [
        *check_environment(scenario, environment),
        *check_approvals(environment, facts.approvals, schedule=schedule_of(runtime.trigger)),
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
    verdicts.extend(check_mutations_not_orchestrator(facts.planned, environment))
    access = environment.spec.kubernetes
    reasons = namespace_reasons(
        facts.selections.values(),
        facts.planned,
        evictable=access.allow_eviction_in if access is not None else (),
    )
    verdicts.extend(
        check_namespace_opt_in(
            environment,
            namespaces=reasons,
            opted_in=runtime.opted_in,
            reasons=reasons,
        )
    )
    verdicts.extend(check_cluster_scope(environment, facts.planned))
    verdicts.extend(
        check_protected_principals(
            environment,
            selections=facts.selections.values(),
            planned=facts.planned,
            break_glass=facts.break_glass,
        )
    )
    verdicts.extend(check_action_refusals(facts.planned))
    verdicts.extend(
        check_services(spec.guardrails, facts.impacted, protected=environment.spec.protected)
    )
    for verdict in refusals(verdicts):
        log.info("guardrail refused %s: %s", scenario.metadata.name, verdict)
    return verdicts
