"""Models: the pydantic shape of Scenario, Drill and Environment documents.

Invariants: every model is frozen and forbids unknown fields; YAML spells fields in
camelCase (`steadyState`, `blastRadius`), Python in snake_case; every check that needs
only one value or one object lives here (types, ranges, exactly-one-of), while checks that
relate parts of a document to each other (references, revertibility) live in `linting`.
Relative paths (`kubeconfig`, `cmdb.backstage`, `killSwitchFile`) are resolved against the
document's folder when validation is given `context={"base_dir": folder}`.
"""

from __future__ import annotations

import datetime
import difflib
import enum
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal, TypeAlias

import pydantic
from pydantic import alias_generators

from scenarios import parameters, quantities

API_VERSION: Final = "stormdrill.dev/v1"

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_LOCAL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_ENTITY_REF = re.compile(
    r"(?:(?P<kind>[A-Za-z]+):)?(?:(?P<namespace>[a-z0-9][a-z0-9._-]*)/)?"
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
)
_TYPE_NAME = re.compile(r"[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-gov)?-[a-z]+-\d")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")


class Model(pydantic.BaseModel):
    """Base of every document model: frozen, unknown fields forbidden, camelCase in YAML."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


# ---- names and references -------------------------------------------------------------


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid name: use lowercase letters, digits and '-',"
            " starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _local_name(value: str) -> str:
    if len(value) > 63 or not _LOCAL_NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid name: use letters, digits, '-', '_' and '.',"
            " at most 63 characters"
        )
    return value


def _param_name(value: str) -> str:
    if not parameters.is_name(value):
        raise ValueError(
            f"'{value}' is not a valid parameter name: start with a letter or '_', then"
            " letters, digits or '_' (e.g. 'maxNodes')"
        )
    return value


def _entity_ref(value: str) -> str:
    if not _ENTITY_REF.fullmatch(value):
        raise ValueError(
            f"'{value}' is not an entity reference; write 'kind:namespace/name',"
            " e.g. 'component:default/checkout' or 'user:default/alice'"
        )
    return value


def _type_name(value: str) -> str:
    if not _TYPE_NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid action or probe name; use dotted lowercase words,"
            " e.g. 'kubernetes.nodes.drain'"
        )
    return value


def _resolve_path(value: Path, info: pydantic.ValidationInfo) -> Path:
    context = info.context
    if isinstance(context, Mapping):
        base = context.get("base_dir")
        if isinstance(base, Path):
            return (base / value.expanduser()).resolve()
    return value.expanduser()


DocumentName = Annotated[str, pydantic.AfterValidator(_dns_label)]
"""A document name: a DNS-1123 label (`az-failure-kubernetes`)."""
LocalName = Annotated[str, pydantic.AfterValidator(_local_name)]
"""The name of a target, probe or step inside a scenario."""
ParamName = Annotated[str, pydantic.AfterValidator(_param_name)]
"""A parameter name: an identifier usable as `{{ name }}`."""
EntityRef = Annotated[str, pydantic.AfterValidator(_entity_ref)]
"""A Backstage-style entity reference: `component:default/checkout`."""
TypeName = Annotated[str, pydantic.AfterValidator(_type_name)]
"""An action or probe type name: `kubernetes.nodes.drain`."""
RelativePath = Annotated[Path, pydantic.AfterValidator(_resolve_path)]
"""A file path; relative paths resolve against the document's folder."""
NonEmptyText = Annotated[str, pydantic.StringConstraints(min_length=1)]

ParamLiteral: TypeAlias = (
    str | int | float | bool | list[str | int | float | bool] | tuple[str | int | float | bool, ...]
)


def _param_literal(value: object) -> ParamLiteral:
    scalars = (str, int, float, bool)
    if isinstance(value, scalars):
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, scalars) for item in value):
        return tuple(value)
    raise ValueError(
        f"a parameter value must be a string, number, boolean or list of those, got"
        f" {quantities.describe(value)}"
    )


ParamLiteralValue = Annotated[
    ParamLiteral,
    pydantic.PlainValidator(_param_literal),
    pydantic.WithJsonSchema(
        {
            "anyOf": [
                {"type": ["string", "number", "boolean"]},
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
            ]
        }
    ),
]
"""A parameter value as written in YAML: a scalar or a list of scalars."""

Params: TypeAlias = Mapping[str, pydantic.JsonValue]
"""Type-specific settings under `with:`; checked against the action or probe catalog by lint."""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A `did you mean 'x'?` hint, or '' when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


# ---- envelope -------------------------------------------------------------------------


class Kind(enum.StrEnum):
    """The kinds of document Stormdrill reads."""

    SCENARIO = "Scenario"
    DRILL = "Drill"
    ENVIRONMENT = "Environment"


class Metadata(Model):
    """`metadata`: the document's name and free-form labels and annotations."""

    name: DocumentName
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


# ---- scenario ---------------------------------------------------------------------------


class FailureMode(enum.StrEnum):
    """What kind of failure a scenario rehearses."""

    AVAILABILITY_ZONE = "availability-zone"
    REGION = "region"
    THIRD_PARTY = "third-party"
    DEPENDENCY = "dependency"
    KEY_PERSON = "key-person"
    DATA_LOSS = "data-loss"
    CUSTOM = "custom"


class Parameter(Model):
    """A declared scenario parameter: `{type, default?, description?, enum?, items?, secret?}`.

    `secret: true` marks the value as a credential: it is masked in the run record, the
    journal, every report and log line, including where it was substituted into longer text
    (names that look secret, such as `apiToken`, are masked without it).
    """

    type: parameters.ParamType
    default: ParamLiteralValue | None = None
    description: str = ""
    enum: tuple[str | int | float | bool, ...] | None = None
    items: parameters.ParamType = parameters.ParamType.STRING
    secret: bool = False

    @pydantic.model_validator(mode="after")
    def _check_default_and_enum(self) -> Parameter:
        if self.items is parameters.ParamType.LIST:
            raise ValueError("'items' cannot be 'list': lists of lists are not supported")
        allowed = self.typed_enum()
        if self.default is not None:
            value = parameters.coerce(self.default, type_=self.type, items=self.items)
            if allowed is not None:
                check_enum(value, allowed)
        return self

    def typed_default(self) -> parameters.ParamValue | None:
        """The default coerced to the declared type (None when there is no default)."""
        if self.default is None:
            return None
        return parameters.coerce(self.default, type_=self.type, items=self.items)

    def typed_enum(self) -> tuple[parameters.ParamScalar, ...] | None:
        """The allowed values coerced to the (item) type, or None when any value is allowed."""
        if self.enum is None:
            return None
        scalar = self.items if self.type is parameters.ParamType.LIST else self.type
        result: list[parameters.ParamScalar] = []
        for item in self.enum:
            value = parameters.coerce(item, type_=scalar)
            assert not isinstance(value, tuple)
            result.append(value)
        return tuple(result)


def check_enum(value: parameters.ParamValue, allowed: tuple[parameters.ParamScalar, ...]) -> None:
    """Raise ValueError unless `value` (each item of a list) is one of `allowed`."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if item not in allowed:
            shown = ", ".join(parameters.as_text(choice) for choice in allowed)
            raise ValueError(f"'{parameters.as_text(item)}' is not one of: {shown}")


class Provider(enum.StrEnum):
    """Who a target's resources belong to."""

    KUBERNETES = "kubernetes"
    AWS = "aws"
    PEOPLE = "people"


TARGET_KINDS: Final[Mapping[Provider, frozenset[str]]] = {
    Provider.KUBERNETES: frozenset(
        {"node", "pod", "deployment", "statefulset", "namespace", "subject"}
    ),
    Provider.AWS: frozenset(
        {
            "subnet",
            "instance",
            "autoscaling-group",
            "db-instance",
            "security-group",
            "iam-user",
            "vpc",
            "health-check",
            "global-cluster",
        }
    ),
    Provider.PEOPLE: frozenset({"person", "team"}),
}
"""The kinds of resource each provider can select."""

SELECTOR_FIELDS: Final[Mapping[Provider, frozenset[str]]] = {
    Provider.KUBERNETES: frozenset({"labels", "fields", "names"}),
    Provider.AWS: frozenset({"zone", "tags", "ids", "names"}),
    Provider.PEOPLE: frozenset({"refs", "names"}),
}
"""Which selector fields each provider understands."""


class Selector(Model):
    """How a target picks resources; all given criteria must match (AND)."""

    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    fields: dict[str, str] = pydantic.Field(default_factory=dict)
    names: tuple[str, ...] = ()
    zone: str | None = None
    tags: dict[str, str] = pydantic.Field(default_factory=dict)
    ids: tuple[str, ...] = ()
    refs: tuple[EntityRef, ...] = ()

    def used(self) -> frozenset[str]:
        """The selector fields (by YAML name) that were given."""
        return frozenset(name for name in type(self).model_fields if getattr(self, name))


class BlastRadius(Model):
    """The most resources a target may resolve to; planning refuses to exceed it."""

    max: quantities.Quantity


class Target(Model):
    """A named selection of resources, resolved once at plan time."""

    provider: Provider
    kind: str
    selector: Selector
    namespace: str | None = None
    namespaces: tuple[str, ...] = ()
    """Subject targets only: the namespaces whose RoleBindings the drill may edit (none:
    every binding naming the subject, each judged by the guardrails)."""
    blast_radius: BlastRadius | None = None

    @pydantic.model_validator(mode="after")
    def _check_kind_and_selector(self) -> Target:
        kinds = TARGET_KINDS[self.provider]
        if self.kind not in kinds:
            hint = did_you_mean(self.kind, kinds)
            raise ValueError(
                f"'{self.kind}' is not a {self.provider.value} target kind"
                f" ({', '.join(sorted(kinds))})" + (f"; {hint}" if hint else "")
            )
        stray = self.selector.used() - SELECTOR_FIELDS[self.provider]
        if stray:
            raise ValueError(
                f"selector field(s) {', '.join(sorted(stray))} do not apply to"
                f" {self.provider.value} targets (use"
                f" {', '.join(sorted(SELECTOR_FIELDS[self.provider]))})"
            )
        if not self.selector.used():
            raise ValueError("the selector is empty; an empty selector would match everything")
        if self.namespace is not None and self.provider is not Provider.KUBERNETES:
            raise ValueError("'namespace' applies only to kubernetes targets")
        if self.namespaces and (self.provider is not Provider.KUBERNETES or self.kind != "subject"):
            raise ValueError(
                "'namespaces' applies only to kubernetes subject targets (use 'namespace'"
                " for the other kinds)"
            )
        return self


class Phase(enum.StrEnum):
    """When a steady-state probe runs."""

    BEFORE = "before"
    DURING = "during"
    AFTER = "after"


class Probe(Model):
    """A steady-state check, repeated at `interval` in the phases named by `when`."""

    name: LocalName
    type: TypeName
    params: Params = pydantic.Field(default_factory=dict, alias="with")
    interval: quantities.Duration = quantities.Duration(5.0)
    timeout: quantities.Duration = quantities.Duration(2.0)
    tolerance: Annotated[int, pydantic.Field(ge=0)] = 0
    when: tuple[Phase, ...] = (Phase.BEFORE, Phase.DURING, Phase.AFTER)

    @pydantic.model_validator(mode="after")
    def _check_when(self) -> Probe:
        if not self.when:
            raise ValueError("'when' is empty; name at least one of before, during, after")
        return self


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone '{value}' (use an IANA name such as 'UTC')") from exc
    return value


TimeZoneName = Annotated[str, pydantic.AfterValidator(_timezone)]


class Window(Model):
    """A time window in which a drill may run; `end` before `start` spans midnight."""

    days: tuple[Weekday, ...] = tuple(Weekday)
    start: datetime.time
    end: datetime.time
    timezone: TimeZoneName = "UTC"

    @pydantic.model_validator(mode="after")
    def _check_span(self) -> Window:
        if self.start == self.end:
            raise ValueError("'start' and 'end' are equal; the window would be empty")
        if not self.days:
            raise ValueError("'days' is empty; the window would never open")
        return self


class FailingRatio(Model):
    """More than `above` of a probe's samples in the last `window` failed."""

    above: quantities.Percent
    window: quantities.Duration

    @pydantic.model_validator(mode="after")
    def _check(self) -> FailingRatio:
        if self.above.value >= 100:
            raise ValueError("'above' must be under 100%: no share of samples can exceed 100%")
        if self.window.seconds <= 0:
            raise ValueError("'window' must be longer than 0s")
        return self


class AbortCondition(Model):
    """Abort the drill when a steady-state probe fails or a named alarm fires.

    A bare `probe` aborts once the probe fails more than its `tolerance` times in a row;
    `failingFor: 30s` once it has been failing without a pass for that long; `failingRatio:
    {above: 50%, window: 2m}` once more than that share of its samples in the window failed.
    Durations are machine time, measured on sample timestamps and shrunk by the time scale.
    """

    probe: LocalName | None = None
    alarm: str | None = None
    failing_for: quantities.Duration | None = None
    failing_ratio: FailingRatio | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> AbortCondition:
        if (self.probe is None) == (self.alarm is None):
            raise ValueError("give exactly one of 'probe' or 'alarm'")
        if self.probe is None and (self.failing_for or self.failing_ratio):
            raise ValueError("'failingFor' and 'failingRatio' apply to a 'probe' condition only")
        if self.failing_for is not None and self.failing_ratio is not None:
            raise ValueError(
                "give at most one of 'failingFor' or 'failingRatio' (write two conditions "
                "for the same probe to use both)"
            )
        if self.failing_for is not None and self.failing_for.seconds <= 0:
            raise ValueError("'failingFor' must be longer than 0s")
        return self

    def describe(self) -> str:
        """`checkout-healthy failing for 30s`, `alarm high-error-rate` (plans, messages)."""
        if self.alarm is not None:
            return f"alarm {self.alarm} fires"
        if self.failing_for is not None:
            return f"probe {self.probe} failing for {self.failing_for}"
        if self.failing_ratio is not None:
            ratio = self.failing_ratio
            return f"probe {self.probe} failing in over {ratio.above} of samples in {ratio.window}"
        return f"probe {self.probe} failing beyond its tolerance"


class Guardrails(Model):
    """Limits checked before and during a run; breaching one aborts and reverts."""

    environments: Annotated[tuple[DocumentName, ...], pydantic.Field(min_length=1)]
    max_duration: quantities.Duration
    max_services: Annotated[int, pydantic.Field(ge=1)] | None = None
    max_tier: Annotated[int, pydantic.Field(ge=1, le=4)] | None = None
    windows: tuple[Window, ...] = ()
    abort_when: tuple[AbortCondition, ...] = ()


class RollbackPolicy(enum.StrEnum):
    """`auto`: the engine undoes the step; `none`: it does not (see the lint rule)."""

    AUTO = "auto"
    NONE = "none"


class Evidence(enum.StrEnum):
    """What a person completing a manual step must hand in."""

    TEXT = "text"
    URL = "url"
    CHOICE = "choice"


class AssigneeRole(enum.StrEnum):
    """Who within `assignee` is asked: anyone, its current on-call, or its lead."""

    ANY = "any"
    ON_CALL = "on-call"
    LEAD = "lead"


class OnTimeout(enum.StrEnum):
    CONTINUE = "continue"
    ABORT = "abort"


class Manual(Model):
    """A task for a person, with evidence to collect and a deadline."""

    instructions: NonEmptyText
    assignee: EntityRef
    role: AssigneeRole = AssigneeRole.ANY
    timeout: quantities.Duration
    evidence: tuple[Evidence, ...] = (Evidence.TEXT,)
    choices: tuple[NonEmptyText, ...] = ()

    @pydantic.model_validator(mode="after")
    def _check_choices(self) -> Manual:
        if Evidence.CHOICE in self.evidence and len(self.choices) < 2:
            raise ValueError("evidence 'choice' needs at least two 'choices'")
        if self.choices and Evidence.CHOICE not in self.evidence:
            raise ValueError("'choices' given but 'choice' is not in 'evidence'")
        return self


class StepKind(enum.StrEnum):
    ACTION = "action"
    PROBE = "probe"
    WAIT = "wait"
    MANUAL = "manual"


class Step(Model):
    """One step: exactly one of `action`, `probe`, `wait` or `manual`."""

    name: LocalName
    description: str = ""
    action: TypeName | None = None
    target: LocalName | None = None
    params: Params = pydantic.Field(default_factory=dict, alias="with")
    rollback: RollbackPolicy = RollbackPolicy.AUTO
    irreversible: NonEmptyText | None = None
    probe: LocalName | None = None
    wait: quantities.Duration | None = None
    manual: Manual | None = None
    on_timeout: OnTimeout | None = None

    @pydantic.model_validator(mode="after")
    def _check_shape(self) -> Step:
        given = [
            kind.value
            for kind, value in (
                (StepKind.ACTION, self.action),
                (StepKind.PROBE, self.probe),
                (StepKind.WAIT, self.wait),
                (StepKind.MANUAL, self.manual),
            )
            if value is not None
        ]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            raise ValueError(f"a step needs exactly one of action, probe, wait, manual{found}")
        if self.action is None:
            for name, value in (
                ("target", self.target),
                ("with", self.params or None),
                ("irreversible", self.irreversible),
            ):
                if value is not None:
                    raise ValueError(f"'{name}' applies only to action steps")
            if self.rollback is not RollbackPolicy.AUTO:
                raise ValueError("'rollback' applies only to action steps")
        if self.on_timeout is not None and self.manual is None:
            raise ValueError("'onTimeout' applies only to manual steps")
        if self.irreversible is not None and self.rollback is not RollbackPolicy.NONE:
            raise ValueError("'irreversible' explains 'rollback: none'; set 'rollback: none' too")
        return self

    @property
    def kind(self) -> StepKind:
        if self.action is not None:
            return StepKind.ACTION
        if self.probe is not None:
            return StepKind.PROBE
        if self.wait is not None:
            return StepKind.WAIT
        return StepKind.MANUAL

    @property
    def effective_on_timeout(self) -> OnTimeout:
        """Manual steps abort on timeout unless they say otherwise."""
        return self.on_timeout or OnTimeout.ABORT


def _rollback_step(step: Step) -> Step:
    if step.action is None:
        raise ValueError("rollback steps must be action steps (an explicit undo)")
    if step.rollback is RollbackPolicy.NONE or step.irreversible is not None:
        raise ValueError("'rollback'/'irreversible' do not apply inside spec.rollback")
    return step


RollbackStep = Annotated[Step, pydantic.AfterValidator(_rollback_step)]


class Objectives(Model):
    """Recovery objectives the drill checks: time (RTO) and data loss (RPO)."""

    rto: quantities.Duration | None = None
    rpo: quantities.Duration | None = None


class ScenarioSpec(Model):
    """What to break, how to tell health, how to undo, and what recovery must achieve."""

    description: NonEmptyText
    failure_mode: FailureMode
    hypothesis: NonEmptyText
    parameters: dict[ParamName, Parameter] = pydantic.Field(default_factory=dict)
    targets: dict[LocalName, Target] = pydantic.Field(default_factory=dict)
    steady_state: tuple[Probe, ...] = ()
    guardrails: Guardrails
    steps: Annotated[tuple[Step, ...], pydantic.Field(min_length=1)]
    rollback: tuple[RollbackStep, ...] = ()
    objectives: Objectives = Objectives()
    services: tuple[EntityRef, ...] = ()

    def probe(self, name: str) -> Probe | None:
        return next((probe for probe in self.steady_state if probe.name == name), None)


class Scenario(Model):
    """A Scenario document."""

    api_version: Literal["stormdrill.dev/v1"]
    kind: Literal["Scenario"]
    metadata: Metadata
    spec: ScenarioSpec


# ---- drill ------------------------------------------------------------------------------


CRON_ALIASES: Final[Mapping[str, str]] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * sun",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""The `@hourly`-style cron aliases and the five fields each stands for."""


def _cron(value: str) -> str:
    if value.strip().lower() in CRON_ALIASES:
        return value.strip().lower()
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(field) for field in fields):
        raise ValueError(
            f"'{value}' is not a cron expression; use five fields"
            " 'minute hour day-of-month month day-of-week', e.g. '0 10 * * tue',"
            f" or one of {', '.join(CRON_ALIASES)}"
        )
    for (name, low, high), field in zip(_CRON_RANGES, fields, strict=True):
        for number in _cron_numbers(field):
            if not low <= number <= high:
                raise ValueError(
                    f"'{value}': {name} {number} is out of range {low}-{high}"
                    " (fields: minute hour day-of-month month day-of-week)"
                )
    return value


_CRON_RANGES: Final = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
"""Each field's allowed numbers (crontab's: day-of-week 0 and 7 are both Sunday)."""


def _cron_numbers(field: str) -> list[int]:
    """The plain numbers of a cron field's values and ranges (not its steps or names)."""
    found: list[int] = []
    for part in field.split(","):
        base = part.split("/", 1)[0]
        found.extend(int(bound) for bound in base.split("-") if bound.isdigit())
    return found


def _aware(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. '2026-03-01T10:00:00Z'")
    return value


AwareDatetime = Annotated[datetime.datetime, pydantic.AfterValidator(_aware)]


class CatchUp(enum.StrEnum):
    """What a schedule does with fires it missed (an outage, a pause): never a backlog."""

    NONE = "none"
    """Every missed fire is skipped (reason `missed`)."""
    LATEST = "latest"
    """Only the latest missed fire runs; the earlier ones are skipped (reason `missed`)."""


class Schedule(Model):
    """When a drill runs by itself: a cron expression, an interval or one time (exactly one).

    `cron` is five fields or an alias (`@daily`), in `timezone` (IANA); `every` an interval
    (`30m`, `2s`); `at` one aware time. `jitter` delays each fire by a random span inside it;
    a fire later than `misfireGrace` counts as missed (`catchUp`); `paused` schedules record
    skipped fires; none fires after `endAt` or once `maxRuns` runs were started.
    """

    cron: Annotated[str, pydantic.AfterValidator(_cron)] | None = None
    every: quantities.Duration | None = None
    at: AwareDatetime | None = None
    timezone: TimeZoneName = "UTC"
    jitter: quantities.Duration | None = None
    misfire_grace: quantities.Duration = quantities.Duration(300.0)
    catch_up: CatchUp = CatchUp.NONE
    paused: bool = False
    end_at: AwareDatetime | None = None
    max_runs: Annotated[int, pydantic.Field(ge=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        given = [name for name in ("cron", "every", "at") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'cron' (e.g. '0 10 * * tue'), 'every' (e.g. '30m') or"
                f" 'at' (e.g. '2026-03-01T10:00:00Z'); got {', '.join(given) or 'none'}"
            )
        return self


class Approval(Model):
    """A recorded approval: who and when."""

    by: EntityRef
    at: AwareDatetime


class DrillSpec(Model):
    """A scenario bound to an environment and parameter values."""

    scenario: NonEmptyText
    environment: NonEmptyText
    parameters: dict[ParamName, ParamLiteralValue] = pydantic.Field(default_factory=dict)
    schedule: Schedule | None = None
    approvals: tuple[Approval, ...] = ()
    notes: str = ""


class Drill(Model):
    """A Drill document."""

    api_version: Literal["stormdrill.dev/v1"]
    kind: Literal["Drill"]
    metadata: Metadata
    spec: DrillSpec


# ---- environment ------------------------------------------------------------------------


class KubernetesAccess(Model):
    """How to reach the cluster, as kubectl does: a kubeconfig and/or context, or in-cluster.

    With no `kubeconfig` (e.g. `kubernetes: {}`) the provider follows kubectl:
    `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster account in a pod; `context`
    then names a context of that kubeconfig (default: its current context).
    """

    kubeconfig: RelativePath | None = None
    context: str | None = None
    in_cluster: bool = False
    require_namespace_opt_in: bool = True
    allow_cluster_scope: bool = False
    """Drills may edit cluster-wide RBAC (ClusterRoleBindings); off unless said so."""
    allow_eviction_in: tuple[str, ...] = ()
    """Namespaces whose pods a node drain may evict though they have not opted in."""
    protected_principals: tuple[str, ...] = ()
    """RBAC subjects never revoked (`User:frank`, `Group:admins`, `ServiceAccount:ns/name`,
    or a bare user name)."""

    @pydantic.model_validator(mode="after")
    def _at_most_one(self) -> KubernetesAccess:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError("give at most one of 'kubeconfig' or 'inCluster: true'")
        if self.in_cluster and self.context is not None:
            raise ValueError("'context' applies only with 'kubeconfig'")
        return self


def _region(value: str) -> str:
    if not _AWS_REGION.fullmatch(value):
        raise ValueError(f"'{value}' is not an AWS region name such as 'us-east-1'")
    return value


def _role_arn(value: str) -> str:
    if not _ROLE_ARN.fullmatch(value):
        raise ValueError(
            f"'{value}' is not an IAM role ARN such as 'arn:aws:iam::123456789012:role/drills'"
        )
    return value


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(?:/\S*)?", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


HttpUrl = Annotated[str, pydantic.AfterValidator(_http_url)]


class AwsAccess(Model):
    """How to reach AWS; `endpointUrl` points boto3 elsewhere (e.g. the sandbox's moto)."""

    region: Annotated[str, pydantic.AfterValidator(_region)]
    profile: str | None = None
    role_arn: Annotated[str, pydantic.AfterValidator(_role_arn)] | None = None
    endpoint_url: HttpUrl | None = None
    protected_principals: tuple[str, ...] = ()

    @pydantic.model_validator(mode="after")
    def _one_credential_source(self) -> AwsAccess:
        if self.profile is not None and self.role_arn is not None:
            raise ValueError("give at most one of 'profile' or 'roleArn'")
        return self


class PrometheusAccess(Model):
    url: HttpUrl


class CmdbSource(Model):
    """Where the service catalog comes from (Backstage descriptor files)."""

    backstage: Annotated[tuple[RelativePath, ...], pydantic.Field(min_length=1)]


class OrchestratorIdentity(Model):
    """Where Stormdrill itself runs, so no drill ever targets it."""

    namespace: str | None = None
    pod_name: str | None = None
    node_name: str | None = None


class Freeze(Model):
    """A change freeze: no drill may run between `start` and `end`."""

    start: AwareDatetime
    end: AwareDatetime
    reason: NonEmptyText

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


class ApprovalPolicy(Model):
    required: Annotated[int, pydantic.Field(ge=0)] = 0


RevertConcurrency = Annotated[int, pydantic.Field(ge=1, le=256)]


class RollbackLimits(Model):
    """`spec.rollback`: how many reverts run at once, in all and per API server of a provider.

    `concurrency` caps the reverts in flight (default 16); `perProvider` caps them per API
    server of one provider (the cluster's API server; each AWS region's endpoint), never more
    than `concurrency`. A server that throttles (HTTP 429 with Retry-After) pauses every
    revert on it, whatever these say.
    """

    concurrency: RevertConcurrency = 16
    per_provider: dict[Provider, RevertConcurrency] = pydantic.Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _within_concurrency(self) -> RollbackLimits:
        for provider, limit in sorted(self.per_provider.items()):
            if limit > self.concurrency:
                raise ValueError(
                    f"perProvider.{provider.value} is {limit}, more than 'concurrency'"
                    f" ({self.concurrency}), which caps every revert in flight; lower it, or"
                    f" raise 'concurrency' to at least {limit}"
                )
        return self


class EnvironmentSpec(Model):
    """Where drills run: access, protection, time scale and parameter values."""

    protected: bool = False
    approvals: ApprovalPolicy = ApprovalPolicy()
    time_scale: Annotated[float, pydantic.Field(gt=0, le=1)] = 1.0
    kubernetes: KubernetesAccess | None = None
    aws: AwsAccess | None = None
    prometheus: PrometheusAccess | None = None
    cmdb: CmdbSource | None = None
    parameters: dict[ParamName, ParamLiteralValue] = pydantic.Field(default_factory=dict)
    orchestrator: OrchestratorIdentity | None = None
    kill_switch_file: RelativePath | None = None
    freezes: tuple[Freeze, ...] = ()
    allowed_failure_modes: tuple[FailureMode, ...] | None = None
    rollback: RollbackLimits | None = None
    """How many reverts run at once (none given: 16 in all, 16 per API server)."""


class Environment(Model):
    """An Environment document."""

    api_version: Literal["stormdrill.dev/v1"]
    kind: Literal["Environment"]
    metadata: Metadata
    spec: EnvironmentSpec


Document: TypeAlias = Scenario | Drill | Environment
MODELS: Final[Mapping[Kind, type[Scenario] | type[Drill] | type[Environment]]] = {
    Kind.SCENARIO: Scenario,
    Kind.DRILL: Drill,
    Kind.ENVIRONMENT: Environment,
}
