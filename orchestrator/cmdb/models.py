"""CMDB model: services, their dependencies, placement and people, as frozen dataclasses.

Invariants: every reference is an `EntityRef` in canonical form (kind, namespace and
name lower-cased, so `Component:Default/Checkout` and `checkout` compare equal);
a `Catalog` is built once by a loader and never changed afterwards; durations are
`datetime.timedelta`; a `Service` is a Backstage Component or Resource. A catalog may be
partial: what the loader refused (an invalid entity, a missing Location target, a second
definition) is listed in `Catalog.refused`, with its errors in `Catalog.problems`.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import NewType

from orchestrator.cmdb import errors
from scenarios import errors as scenario_errors

DEFAULT_NAMESPACE = "default"
DEFAULT_TIER = 3
"""The tier of a service whose descriptor has no `stormdrill.dev/tier` annotation."""

FailureMode = NewType("FailureMode", str)
"""A scenario failure mode in kebab case, e.g. `availability-zone`, `third-party`."""

RotationName = NewType("RotationName", str)

_NAME = re.compile(r"^[a-z0-9A-Z][a-z0-9A-Z._-]*$")


class EntityKind(enum.StrEnum):
    """The Backstage kinds Stormdrill reads (lower case, as in a canonical ref)."""

    COMPONENT = "component"
    RESOURCE = "resource"
    SYSTEM = "system"
    DOMAIN = "domain"
    API = "api"
    GROUP = "group"
    USER = "user"
    LOCATION = "location"

    @classmethod
    def parse(cls, raw: str) -> EntityKind:
        """`Component`, `component` and `COMPONENT` all give `EntityKind.COMPONENT`."""
        return cls(raw.lower())


SERVICE_KINDS = frozenset({EntityKind.COMPONENT, EntityKind.RESOURCE})


@dataclasses.dataclass(frozen=True, order=True)
class EntityRef:
    """A Backstage entity reference; `str()` gives the canonical `kind:namespace/name`."""

    kind: EntityKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.namespace}/{self.name}"

    @property
    def short(self) -> str:
        """`checkout` for the default namespace, `shop/checkout` otherwise (kind omitted)."""
        if self.namespace == DEFAULT_NAMESPACE:
            return self.name
        return f"{self.namespace}/{self.name}"

    @property
    def display(self) -> str:
        """The shortest form `parse` reads back as this ref (for tables people copy from).

        `checkout` for a component in the default namespace (and for a group or user, where
        the column names the kind: an owner); `resource:payments-db`; `component:shop/checkout`.
        """
        plain = (EntityKind.COMPONENT, EntityKind.GROUP, EntityKind.USER)
        if self.kind in plain and self.namespace == DEFAULT_NAMESPACE:
            return self.name
        return f"{self.kind.value}:{self.short}"

    @classmethod
    def parse(
        cls,
        raw: str,
        *,
        default_kind: EntityKind | None = None,
        default_namespace: str = DEFAULT_NAMESPACE,
    ) -> EntityRef:
        """Parse `kind:namespace/name`, `kind:name`, `namespace/name` or `name`.

        The kind may be left out only when the context gives one (`default_kind`),
        as Backstage does (e.g. `spec.owner` defaults to `group`). Raises `RefInvalid`.
        """
        text = raw.strip()
        if not text:
            raise errors.RefInvalid(raw, "it is empty")
        kind_part, sep, rest = text.partition(":")
        if not sep:
            kind_part, rest = "", text
        if kind_part:
            try:
                kind = EntityKind.parse(kind_part)
            except ValueError:
                known = ", ".join(k.value for k in EntityKind)
                raise errors.RefInvalid(
                    raw, f"unknown kind {kind_part!r} (known: {known})"
                ) from None
        elif default_kind is not None:
            kind = default_kind
        else:
            raise errors.RefInvalid(raw, "the kind is missing here; write it as 'kind:name'")
        namespace_part, slash, name = rest.partition("/")
        if not slash:
            namespace_part, name = default_namespace, rest
        for label, part in (("namespace", namespace_part), ("name", name)):
            if not _NAME.match(part):
                raise errors.RefInvalid(
                    raw, f"{label} {part!r} must be letters, digits, '.', '_' or '-'"
                )
        return cls(kind, namespace_part.lower(), name.lower())


class DependencyType(enum.StrEnum):
    """Why a service needs another one (the Backstage relation it comes from)."""

    DEPENDS_ON = "dependsOn"
    """`spec.dependsOn` (or the other side's `spec.dependencyOf`)."""
    CONSUMES_API = "consumesApi"
    """The service consumes an API the other one provides."""
    HAS_PART = "hasPart"
    """The other service is a `subcomponentOf` this one: a part failing hurts the whole."""


@dataclasses.dataclass(frozen=True)
class Dependency:
    """An edge `service -> ref`: the service needs `ref` to work."""

    ref: EntityRef
    type: DependencyType
    via: EntityRef | None = None
    """The API through which a `consumesApi` dependency runs."""


@dataclasses.dataclass(frozen=True)
class SourceLocation:
    """Where an entity is written: file and 1-based line/column of its document."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Objectives:
    """Recovery objectives: a default RTO/RPO plus overrides per failure mode."""

    rto: datetime.timedelta | None = None
    rpo: datetime.timedelta | None = None
    rto_by_mode: Mapping[FailureMode, datetime.timedelta] = dataclasses.field(default_factory=dict)
    rpo_by_mode: Mapping[FailureMode, datetime.timedelta] = dataclasses.field(default_factory=dict)

    def rto_for(self, mode: str | None = None) -> datetime.timedelta | None:
        """The RTO that holds for `mode`: its override if any, else the default."""
        if mode is not None and FailureMode(mode) in self.rto_by_mode:
            return self.rto_by_mode[FailureMode(mode)]
        return self.rto

    def rpo_for(self, mode: str | None = None) -> datetime.timedelta | None:
        """The RPO that holds for `mode`: its override if any, else the default."""
        if mode is not None and FailureMode(mode) in self.rpo_by_mode:
            return self.rpo_by_mode[FailureMode(mode)]
        return self.rpo


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class Vendor:
    """A third party (Resource of type `vendor` or `third-party`) and where it is reached."""

    ref: EntityRef
    cidrs: tuple[IPNetwork, ...] = ()
    ports: tuple[int, ...] = ()


class SelectorOperator(enum.StrEnum):
    """Kubernetes label-selector operators."""

    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


@dataclasses.dataclass(frozen=True)
class LabelRequirement:
    """One requirement of a label selector (`k=v` is `k in (v)`, `k!=v` is `k notin (v)`)."""

    key: str
    operator: SelectorOperator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this requirement."""
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.operator is SelectorOperator.IN:
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


_SET_REQUIREMENT = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector (equality- and set-based); never empty."""

    requirements: tuple[LabelRequirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every requirement holds for `labels`."""
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            values = sorted(r.values)
            if r.operator is SelectorOperator.EXISTS:
                parts.append(r.key)
            elif r.operator is SelectorOperator.DOES_NOT_EXIST:
                parts.append(f"!{r.key}")
            elif len(values) == 1:
                op = "=" if r.operator is SelectorOperator.IN else "!="
                parts.append(f"{r.key}{op}{values[0]}")
            else:
                parts.append(f"{r.key} {r.operator.value} ({','.join(values)})")
        return ",".join(parts)

    @classmethod
    def parse(cls, raw: str) -> LabelSelector:
        """Parse `a=b,c!=d,e in (f,g),h,!i`; raises `ValueError` naming the bad part."""
        requirements = [_parse_requirement(part) for part in _split_selector(raw)]
        if not requirements:
            raise ValueError("the selector is empty (it would match every pod)")
        return cls(tuple(requirements))


def _split_selector(raw: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in raw:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def _parse_requirement(part: str) -> LabelRequirement:
    match = _SET_REQUIREMENT.match(part)
    if match:
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        return _checked(LabelRequirement(match["key"], SelectorOperator(match["op"]), values), part)
    for op_text, operator in (("!=", SelectorOperator.NOT_IN), ("==", SelectorOperator.IN)):
        if op_text in part:
            key, _, value = part.partition(op_text)
            return _checked(
                LabelRequirement(key.strip(), operator, frozenset({value.strip()})), part
            )
    if "=" in part:
        key, _, value = part.partition("=")
        return _checked(
            LabelRequirement(key.strip(), SelectorOperator.IN, frozenset({value.strip()})), part
        )
    if part.startswith("!"):
        return _checked(LabelRequirement(part[1:].strip(), SelectorOperator.DOES_NOT_EXIST), part)
    return _checked(LabelRequirement(part, SelectorOperator.EXISTS), part)


def _checked(requirement: LabelRequirement, part: str) -> LabelRequirement:
    if not _LABEL_KEY.match(requirement.key):
        raise ValueError(f"{part!r}: {requirement.key!r} is not a label key")
    for value in requirement.values:
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{part!r}: {value!r} is not a label value")
    return requirement


@dataclasses.dataclass(frozen=True)
class KubernetesPlacement:
    """Where a service runs in Kubernetes. Empty `clusters`/`namespaces` mean any."""

    selectors: tuple[LabelSelector, ...] = ()
    namespaces: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()

    def matches(self, *, namespace: str, labels: Mapping[str, str], cluster: str | None) -> bool:
        """Whether a workload in `namespace` with `labels` belongs to this service.

        A placement without selectors matches nothing (never the whole namespace).
        """
        if not self.selectors:
            return False
        if self.namespaces and namespace not in self.namespaces:
            return False
        if cluster is not None and self.clusters and cluster not in self.clusters:
            return False
        return any(s.matches(labels) for s in self.selectors)


class AwsResourceType(enum.StrEnum):
    """The kinds of AWS resource a service may name in `stormdrill.dev/aws-resources`."""

    EC2 = "ec2"
    ASG = "asg"
    RDS = "rds"
    SUBNET = "subnet"
    VPC = "vpc"
    SECURITY_GROUP = "sg"
    ELB = "elb"
    LAMBDA = "lambda"
    S3 = "s3"
    DYNAMODB = "dynamodb"
    SQS = "sqs"


@dataclasses.dataclass(frozen=True, order=True)
class AwsResourceId:
    """`rds:payments-db`: an AWS resource type and its name or id."""

    type: AwsResourceType
    id: str

    def __str__(self) -> str:
        return f"{self.type.value}:{self.id}"

    @classmethod
    def parse(cls, raw: str) -> AwsResourceId:
        """Parse `type:id`; raises `ValueError` naming the known types."""
        type_text, sep, ident = raw.strip().partition(":")
        known = ", ".join(t.value for t in AwsResourceType)
        if not sep or not ident.strip():
            raise ValueError(f"{raw!r} must be 'type:id' (types: {known})")
        try:
            resource_type = AwsResourceType(type_text.strip().lower())
        except ValueError:
            raise ValueError(
                f"{raw!r}: unknown AWS resource type {type_text!r} (types: {known})"
            ) from None
        return cls(resource_type, ident.strip())


@dataclasses.dataclass(frozen=True)
class AwsPlacement:
    """Where a service runs in AWS: tags its resources carry, regions, zones, named resources."""

    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    resources: tuple[AwsResourceId, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.tags or self.regions or self.zones or self.resources)


@dataclasses.dataclass(frozen=True)
class People:
    """Who can act on a service: owners, on-call, break-glass, runbook keepers, repo path."""

    owners: tuple[EntityRef, ...] = ()
    """Users of the owner group (or the owner user itself)."""
    on_call: tuple[RotationName, ...] = ()
    """Rotations covering the service (for the service itself or its owner group)."""
    break_glass: tuple[EntityRef, ...] = ()
    runbook_owner: EntityRef | None = None
    runbook_editors: tuple[EntityRef, ...] = ()
    repo_path: str | None = None
    """Repository path of the service's code, for truck-factor analysis."""


@dataclasses.dataclass(frozen=True)
class Service:
    """A Component or Resource: what a drill can break and whose objectives it checks."""

    ref: EntityRef
    name: str
    kind: EntityKind
    type: str
    system: EntityRef | None
    owner: EntityRef
    tier: int
    lifecycle: str | None
    objectives: Objectives
    source: SourceLocation
    title: str | None = None
    description: str | None = None
    tier_defaulted: bool = False
    """True when the descriptor has no tier annotation and `DEFAULT_TIER` was used."""
    dependencies: tuple[Dependency, ...] = ()
    provides_apis: tuple[EntityRef, ...] = ()
    vendor: Vendor | None = None
    """Set when this service is itself a third party."""
    vendors: tuple[Vendor, ...] = ()
    """The third parties this service calls directly."""
    kubernetes: KubernetesPlacement = dataclasses.field(default_factory=KubernetesPlacement)
    aws: AwsPlacement = dataclasses.field(default_factory=AwsPlacement)
    people: People = dataclasses.field(default_factory=People)

    @property
    def depends_on(self) -> tuple[EntityRef, ...]:
        return tuple(d.ref for d in self.dependencies)


@dataclasses.dataclass(frozen=True)
class System:
    """A Backstage System: a set of services owned together."""

    ref: EntityRef
    owner: EntityRef
    source: SourceLocation
    domain: EntityRef | None = None
    title: str | None = None
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class Domain:
    """A Backstage Domain: a business area grouping systems."""

    ref: EntityRef
    owner: EntityRef
    source: SourceLocation
    title: str | None = None


@dataclasses.dataclass(frozen=True)
class Api:
    """A Backstage API, with the services providing and consuming it."""

    ref: EntityRef
    type: str
    owner: EntityRef
    source: SourceLocation
    system: EntityRef | None = None
    providers: tuple[EntityRef, ...] = ()
    consumers: tuple[EntityRef, ...] = ()


@dataclasses.dataclass(frozen=True)
class Group:
    """A team; `members` and `children` merge both sides of the Backstage relations."""

    ref: EntityRef
    source: SourceLocation
    type: str = "team"
    display_name: str | None = None
    email: str | None = None
    members: tuple[EntityRef, ...] = ()
    parent: EntityRef | None = None
    children: tuple[EntityRef, ...] = ()


@dataclasses.dataclass(frozen=True)
class User:
    """A person; `member_of` merges `spec.memberOf` and groups listing the user."""

    ref: EntityRef
    source: SourceLocation
    display_name: str | None = None
    email: str | None = None
    member_of: tuple[EntityRef, ...] = ()


@dataclasses.dataclass(frozen=True)
class Override:
    """`user` is on call instead of `replaces` (or in addition, if None) in [start, end)."""

    user: EntityRef
    start: datetime.datetime
    end: datetime.datetime
    replaces: EntityRef | None = None

    def active_at(self, when: datetime.datetime) -> bool:
        return self.start <= when < self.end


@dataclasses.dataclass(frozen=True)
class Layer:
    """One escalation layer of a rotation (e.g. primary, secondary)."""

    name: str
    members: tuple[EntityRef, ...]
    overrides: tuple[Override, ...] = ()

    def on_call_at(self, when: datetime.datetime) -> tuple[EntityRef, ...]:
        """The members reachable at `when`, overrides applied (timestamps are tz-aware)."""
        people = list(self.members)
        for override in self.overrides:
            if not override.active_at(when):
                continue
            if override.replaces is not None and override.replaces in people:
                people[people.index(override.replaces)] = override.user
            elif override.user not in people:
                people.append(override.user)
        return tuple(dict.fromkeys(people))


@dataclasses.dataclass(frozen=True)
class Rotation:
    """An on-call rotation for one service or one team, in escalation order."""

    name: RotationName
    layers: tuple[Layer, ...]
    source: SourceLocation
    service: EntityRef | None = None
    team: EntityRef | None = None

    @property
    def members(self) -> tuple[EntityRef, ...]:
        """Everyone in any layer, in escalation order, without overrides."""
        return tuple(dict.fromkeys(m for layer in self.layers for m in layer.members))


@dataclasses.dataclass(frozen=True)
class Refused:
    """Something the loader left out of the catalog, and where it is written.

    `what` names it as a person would: `component:default/web`, `Location target
    'teams/*.yaml'`, `documents of c.yaml that are not valid YAML`.
    """

    what: str
    source: SourceLocation
    break_glass: tuple[str, ...] = ()
    """User names its `stormdrill.dev/break-glass` annotation names, read as written: a
    refused entity's break-glass holders stay protected (guardrails fail safe)."""


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Everything the loader read.

    `problems` holds the warnings and the errors of what was `refused` (Backstage's way:
    one bad entity is marked, the rest is ingested); a strict load raises instead.
    """

    services: Mapping[EntityRef, Service] = dataclasses.field(default_factory=dict)
    systems: Mapping[EntityRef, System] = dataclasses.field(default_factory=dict)
    domains: Mapping[EntityRef, Domain] = dataclasses.field(default_factory=dict)
    apis: Mapping[EntityRef, Api] = dataclasses.field(default_factory=dict)
    groups: Mapping[EntityRef, Group] = dataclasses.field(default_factory=dict)
    users: Mapping[EntityRef, User] = dataclasses.field(default_factory=dict)
    rotations: Mapping[RotationName, Rotation] = dataclasses.field(default_factory=dict)
    problems: tuple[scenario_errors.Problem, ...] = ()
    refused: tuple[Refused, ...] = ()

    @property
    def errors(self) -> tuple[scenario_errors.Problem, ...]:
        """The error-severity problems (each belongs to something refused)."""
        return tuple(p for p in self.problems if p.severity == "error")

    def all_refs(self) -> list[EntityRef]:
        """Every entity reference in the catalog."""
        tables: Iterable[Mapping[EntityRef, object]] = (
            self.services,
            self.systems,
            self.domains,
            self.apis,
            self.groups,
            self.users,
        )
        return [ref for table in tables for ref in table]

    def service(self, ref: EntityRef) -> Service:
        """The service `ref`; raises `UnknownRef` with close names if there is none."""
        try:
            return self.services[ref]
        except KeyError:
            raise errors.UnknownRef(
                str(ref), suggestions=close_matches(str(ref), self.services), what="service"
            ) from None

    def lookup(self, raw: str, *, default_kind: EntityKind | None = None) -> EntityRef:
        """Resolve a reference typed by a person: a full ref, or a name unique in the catalog.

        `checkout` finds `component:default/checkout`; `payments-db` finds
        `resource:default/payments-db`. Raises `RefInvalid` or `UnknownRef`.
        """
        known = self.all_refs()
        if default_kind is None and ":" not in raw:
            name_ref = EntityRef.parse(raw, default_kind=EntityKind.COMPONENT)
            same_name = [
                r for r in known if (r.namespace, r.name) == (name_ref.namespace, name_ref.name)
            ]
            services = [r for r in same_name if r.kind in SERVICE_KINDS]
            candidates = services or same_name
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise errors.UnknownRef(
                    raw, suggestions=[str(r) for r in sorted(candidates)], what="unique entity"
                )
            ref = name_ref
        else:
            ref = EntityRef.parse(raw, default_kind=default_kind)
        if ref not in set(known):
            raise errors.UnknownRef(str(ref), suggestions=close_matches(str(ref), known))
        return ref

    def rotations_for(self, ref: EntityRef) -> list[Rotation]:
        """Rotations covering `ref`: its own, then its owner group's (for a service)."""
        service = self.services.get(ref)
        owner = service.owner if service is not None else None
        own = [r for r in self.rotations.values() if r.service == ref]
        team = [
            r
            for r in self.rotations.values()
            if r.team is not None and r.team in (ref, owner) and r not in own
        ]
        return own + team

    def dependents(self, ref: EntityRef) -> list[Service]:
        """Services that depend directly on `ref`."""
        return [s for s in self.services.values() if ref in s.depends_on]


def close_matches(word: str, known: Iterable[object]) -> list[str]:
    """Up to three refs among `known` whose names are close to `word`'s, for "did you mean"."""
    name = word.rpartition("/")[2].rpartition(":")[2]
    by_name: dict[str, list[str]] = {}
    for ref in known:
        text = str(ref)
        by_name.setdefault(text.rpartition("/")[2], []).append(text)
    close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.6)
    return [ref for match in close for ref in sorted(by_name[match])][:3]
