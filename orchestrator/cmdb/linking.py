"""Linking: parsed entities and rotations into a `Catalog` with both sides of every relation.

Invariants: a pure function of its inputs; an entity defined twice is an error at the
second definition; a reference to nothing is a warning at the place it is written
(Backstage tolerates dangling relations, and a partial catalog still loads); Group
members/children and User memberOf merge both sides; a component consuming an API
depends on the API's providers; a parent component depends on its subcomponents.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence

from orchestrator.cmdb import documents, models, references
from scenarios import errors as scenario_errors

_K = models.EntityKind


@dataclasses.dataclass(frozen=True)
class ParsedEntity:
    """One Backstage entity as read, references parsed, before relations are linked."""

    ref: models.EntityRef
    document: documents.Document
    source: models.SourceLocation
    title: str | None = None
    description: str | None = None
    type: str | None = None
    lifecycle: str | None = None
    owner: models.EntityRef | None = None
    system: models.EntityRef | None = None
    domain: models.EntityRef | None = None
    subcomponent_of: models.EntityRef | None = None
    depends_on: tuple[models.EntityRef, ...] = ()
    dependency_of: tuple[models.EntityRef, ...] = ()
    provides_apis: tuple[models.EntityRef, ...] = ()
    consumes_apis: tuple[models.EntityRef, ...] = ()
    parent: models.EntityRef | None = None
    children: tuple[models.EntityRef, ...] = ()
    members: tuple[models.EntityRef, ...] = ()
    member_of: tuple[models.EntityRef, ...] = ()
    display_name: str | None = None
    email: str | None = None
    tier: int | None = None
    objectives: models.Objectives = dataclasses.field(default_factory=models.Objectives)
    vendor: models.Vendor | None = None
    kubernetes: models.KubernetesPlacement = dataclasses.field(
        default_factory=models.KubernetesPlacement
    )
    aws: models.AwsPlacement = dataclasses.field(default_factory=models.AwsPlacement)
    break_glass: tuple[models.EntityRef, ...] = ()
    runbook_owner: models.EntityRef | None = None
    runbook_editors: tuple[models.EntityRef, ...] = ()
    repo_path: str | None = None

    @property
    def kind(self) -> models.EntityKind:
        return self.ref.kind


def link(
    *,
    entities: Sequence[ParsedEntity],
    rotations: Sequence[models.Rotation],
    refs: Sequence[references.RefSite],
) -> tuple[models.Catalog, list[scenario_errors.Problem]]:
    """Build the catalog; returns it with the problems found while linking."""
    problems: list[scenario_errors.Problem] = []
    by_ref = _unique_entities(entities, problems)
    _dangling(refs, by_ref, problems)
    rotation_map = _unique_rotations(rotations, problems)
    groups = _groups(by_ref)
    users = _users(by_ref)
    apis = _apis(by_ref)
    services = _services(
        by_ref, groups=groups, apis=apis, rotations=rotation_map, problems=problems
    )
    catalog = models.Catalog(
        services=services,
        systems={
            r: models.System(
                ref=r,
                owner=e.owner,
                source=e.source,
                domain=e.domain,
                title=e.title,
                description=e.description,
            )
            for r, e in by_ref.items()
            if r.kind is _K.SYSTEM and e.owner is not None
        },
        domains={
            r: models.Domain(ref=r, owner=e.owner, source=e.source, title=e.title)
            for r, e in by_ref.items()
            if r.kind is _K.DOMAIN and e.owner is not None
        },
        apis=apis,
        groups=groups,
        users=users,
        rotations=rotation_map,
    )
    return catalog, problems


def _unique_entities(
    entities: Sequence[ParsedEntity], problems: list[scenario_errors.Problem]
) -> dict[models.EntityRef, ParsedEntity]:
    by_ref: dict[models.EntityRef, ParsedEntity] = {}
    for entity in entities:
        first = by_ref.get(entity.ref)
        if first is not None:
            problems.append(
                entity.document.problem(
                    ("metadata", "name"),
                    f"{entity.ref} is defined twice",
                    hint=f"first defined at {first.source}; rename or remove one",
                )
            )
            continue
        by_ref[entity.ref] = entity
    return by_ref


def _dangling(
    refs: Sequence[references.RefSite],
    by_ref: dict[models.EntityRef, ParsedEntity],
    problems: list[scenario_errors.Problem],
) -> None:
    known = [str(r) for r in by_ref]
    for site in refs:
        if site.ref in by_ref:
            continue
        close = difflib.get_close_matches(str(site.ref), known, n=1, cutoff=0.6)
        same_name = [str(r) for r in by_ref if r.name == site.ref.name]
        suggestion = same_name[:1] or close
        problems.append(
            site.document.problem(
                site.path,
                f"dangling reference: no entity {str(site.ref)!r} in the catalog",
                hint=f"did you mean {suggestion[0]!r}?" if suggestion else "",
                severity="warning",
            )
        )


def _unique_rotations(
    rotations: Sequence[models.Rotation], problems: list[scenario_errors.Problem]
) -> dict[models.RotationName, models.Rotation]:
    by_name: dict[models.RotationName, models.Rotation] = {}
    for rotation in rotations:
        first = by_name.get(rotation.name)
        if first is not None:
            problems.append(
                scenario_errors.Problem(
                    file=rotation.source.file,
                    line=rotation.source.line,
                    column=rotation.source.column,
                    field="name",
                    message=f"rotation {rotation.name!r} is defined twice",
                    hint=f"first defined at {first.source}",
                )
            )
            continue
        by_name[rotation.name] = rotation
    return by_name


def _of_kind(
    by_ref: dict[models.EntityRef, ParsedEntity], kind: models.EntityKind
) -> list[ParsedEntity]:
    return [e for e in by_ref.values() if e.kind is kind]


def _groups(
    by_ref: dict[models.EntityRef, ParsedEntity],
) -> dict[models.EntityRef, models.Group]:
    groups = _of_kind(by_ref, _K.GROUP)
    users = _of_kind(by_ref, _K.USER)
    result = {}
    for group in groups:
        members = (*group.members, *(u.ref for u in users if group.ref in u.member_of))
        children = (*group.children, *(g.ref for g in groups if g.parent == group.ref))
        parent = group.parent or next((g.ref for g in groups if group.ref in g.children), None)
        result[group.ref] = models.Group(
            ref=group.ref,
            source=group.source,
            type=group.type or "team",
            display_name=group.display_name,
            email=group.email,
            members=tuple(dict.fromkeys(members)),
            parent=parent,
            children=tuple(dict.fromkeys(children)),
        )
    return result


def _users(by_ref: dict[models.EntityRef, ParsedEntity]) -> dict[models.EntityRef, models.User]:
    groups = _of_kind(by_ref, _K.GROUP)
    result = {}
    for user in _of_kind(by_ref, _K.USER):
        member_of = (*user.member_of, *(g.ref for g in groups if user.ref in g.members))
        result[user.ref] = models.User(
            ref=user.ref,
            source=user.source,
            display_name=user.display_name,
            email=user.email,
            member_of=tuple(dict.fromkeys(member_of)),
        )
    return result


def _apis(by_ref: dict[models.EntityRef, ParsedEntity]) -> dict[models.EntityRef, models.Api]:
    components = _of_kind(by_ref, _K.COMPONENT)
    result = {}
    for api in _of_kind(by_ref, _K.API):
        if api.owner is None:
            continue
        result[api.ref] = models.Api(
            ref=api.ref,
            type=api.type or "",
            owner=api.owner,
            source=api.source,
            system=api.system,
            providers=tuple(c.ref for c in components if api.ref in c.provides_apis),
            consumers=tuple(c.ref for c in components if api.ref in c.consumes_apis),
        )
    return result


def _services(
    by_ref: dict[models.EntityRef, ParsedEntity],
    *,
    groups: dict[models.EntityRef, models.Group],
    apis: dict[models.EntityRef, models.Api],
    rotations: dict[models.RotationName, models.Rotation],
    problems: list[scenario_errors.Problem],
) -> dict[models.EntityRef, models.Service]:
    entities = [e for e in by_ref.values() if e.kind in models.SERVICE_KINDS]
    result = {}
    for entity in entities:
        if entity.owner is None:
            continue  # its owner was invalid: an error is already reported
        dependencies = _dependencies(entity, entities=entities, apis=apis, problems=problems)
        vendors = tuple(
            vendor
            for d in dependencies
            if d.ref in by_ref and (vendor := by_ref[d.ref].vendor) is not None
        )
        owner_group = groups.get(entity.owner)
        owners = owner_group.members if owner_group is not None else ()
        if entity.owner.kind is _K.USER:
            owners = (entity.owner,)
        on_call = tuple(
            r.name
            for r in rotations.values()
            if r.service == entity.ref or (r.team is not None and r.team == entity.owner)
        )
        result[entity.ref] = models.Service(
            ref=entity.ref,
            name=entity.ref.name,
            kind=entity.kind,
            type=entity.type or "",
            system=entity.system,
            owner=entity.owner,
            tier=entity.tier if entity.tier is not None else models.DEFAULT_TIER,
            tier_defaulted=entity.tier is None,
            lifecycle=entity.lifecycle,
            objectives=entity.objectives,
            source=entity.source,
            title=entity.title,
            description=entity.description,
            dependencies=dependencies,
            provides_apis=entity.provides_apis,
            vendor=entity.vendor,
            vendors=vendors,
            kubernetes=entity.kubernetes,
            aws=entity.aws,
            people=models.People(
                owners=owners,
                on_call=on_call,
                break_glass=entity.break_glass,
                runbook_owner=entity.runbook_owner,
                runbook_editors=entity.runbook_editors,
                repo_path=entity.repo_path,
            ),
        )
    return result


def _dependencies(
    entity: ParsedEntity,
    *,
    entities: Sequence[ParsedEntity],
    apis: dict[models.EntityRef, models.Api],
    problems: list[scenario_errors.Problem],
) -> tuple[models.Dependency, ...]:
    found: list[models.Dependency] = [
        models.Dependency(ref, models.DependencyType.DEPENDS_ON) for ref in entity.depends_on
    ]
    found += [
        models.Dependency(other.ref, models.DependencyType.DEPENDS_ON)
        for other in entities
        if entity.ref in other.dependency_of
    ]
    for index, api_ref in enumerate(entity.consumes_apis):
        api = apis.get(api_ref)
        if api is None:
            continue  # dangling: reported where it is written
        providers = [p for p in api.providers if p != entity.ref]
        if not providers and entity.ref not in api.providers:
            problems.append(
                entity.document.problem(
                    ("spec", "consumesApis", index),
                    f"{api_ref} has no provider in the catalog; this dependency is not followed",
                    hint="add it to the providing component's spec.providesApis",
                    severity="warning",
                )
            )
        found += [
            models.Dependency(p, models.DependencyType.CONSUMES_API, via=api_ref) for p in providers
        ]
    found += [
        models.Dependency(other.ref, models.DependencyType.HAS_PART)
        for other in entities
        if other.subcomponent_of == entity.ref
    ]
    unique: dict[models.EntityRef, models.Dependency] = {}
    for dependency in found:
        if dependency.ref != entity.ref:
            unique.setdefault(dependency.ref, dependency)
    return tuple(unique.values())
