"""Directory: who a person or team reference names in the CMDB, and who is in a team.

Invariants:
- Every reference is checked against the catalog; a reference naming nobody raises
  `UnknownPerson` naming the place and the closest refs (did you mean …).
- A "team" is any Backstage Group (a team, a department, an office such as
  `group:office-berlin`); its people are its members and its sub-groups' members.
- A person's `TargetRef` is `people person user:<namespace>/<name>`; the name carries the
  canonical entity ref so every provider can recover it (`ref_of_target`).
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator import manual, mutations
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb
from orchestrator.providers.people import connecting, errors

PERSON = manual.PERSON
TEAM = "team"


def _parse(raw: str, *, kind: cmdb.EntityKind, where: str, what: str) -> cmdb.EntityRef:
    try:
        return cmdb.EntityRef.parse(raw, default_kind=kind)
    except cmdb_errors.RefInvalid as exc:
        raise errors.UnknownPerson(raw, where=where, what=what) from exc


def person(catalog: cmdb.Catalog, raw: str, *, where: str) -> cmdb.EntityRef:
    """The User `raw` names (`alice`, `user:alice`, `user:default/alice`)."""
    ref = _parse(raw, kind=cmdb.EntityKind.USER, where=where, what="person")
    if ref.kind is not cmdb.EntityKind.USER:
        raise errors.UnknownPerson(
            raw,
            where=where,
            what="person (it names a " + ref.kind.value + "; use a 'team' target for groups)",
        )
    if ref not in catalog.users:
        raise errors.UnknownPerson(
            raw,
            where=where,
            what="person",
            suggestions=cmdb.close_matches(str(ref), catalog.users),
        )
    return ref


def team(catalog: cmdb.Catalog, raw: str, *, where: str) -> cmdb.EntityRef:
    """The Group `raw` names (`team-payments`, `group:default/office-berlin`)."""
    ref = _parse(raw, kind=cmdb.EntityKind.GROUP, where=where, what="team")
    if ref not in catalog.groups:
        raise errors.UnknownPerson(
            raw,
            where=where,
            what="team",
            suggestions=cmdb.close_matches(str(ref), catalog.groups),
        )
    return ref


def target_ref(ref: cmdb.EntityRef) -> mutations.TargetRef:
    """The `TargetRef` of a person or team."""
    kind = PERSON if ref.kind is cmdb.EntityKind.USER else TEAM
    return mutations.TargetRef(provider=connecting.PROVIDER, kind=kind, name=str(ref))


def ref_of_target(target: mutations.TargetRef) -> cmdb.EntityRef:
    """The entity a people `TargetRef` names (inverse of `target_ref`)."""
    kind = cmdb.EntityKind.USER if target.kind == PERSON else cmdb.EntityKind.GROUP
    return cmdb.EntityRef.parse(target.name, default_kind=kind)


def people_of(
    catalog: cmdb.Catalog, targets: Iterable[mutations.TargetRef]
) -> list[cmdb.EntityRef]:
    """Every person the person/team targets stand for, in order, without repeats."""
    found: list[cmdb.EntityRef] = []
    for target in targets:
        found.extend(manual.members(catalog, ref_of_target(target)))
    return list(dict.fromkeys(found))


def label(ref: cmdb.EntityRef) -> str:
    """`alice` for `user:default/alice` (the short name a person reads)."""
    return ref.short
