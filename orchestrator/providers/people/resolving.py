"""Resolving: `provider: people` targets (kind `person` or `team`) into frozen `TargetRef`s.

Invariants: resolving only reads the CMDB; `selector.refs` and `selector.names` are both
accepted (a bare name is a user for `person`, a group for `team`); an unknown ref fails the
plan with a did-you-mean naming the target; the population is every person (or every
group) in the catalog.
"""

from __future__ import annotations

from typing import ClassVar

from orchestrator import registry
from orchestrator import targets as selections
from orchestrator.providers.people import connecting, directory
from scenarios import models


class PeopleResolver(registry.TargetResolver):
    """Looks people and teams up in the run's CMDB."""

    provider: ClassVar[str] = connecting.PROVIDER
    kinds: ClassVar[frozenset[str]] = frozenset({directory.PERSON, directory.TEAM})

    def resolve(
        self, ctx: registry.ProviderContext, *, name: str, target: models.Target
    ) -> selections.Selection:
        catalog = connecting.of(ctx).catalog
        raws = [*target.selector.refs, *target.selector.names]
        where = f"spec.targets.{name}"
        if target.kind == directory.PERSON:
            refs = [directory.person(catalog, raw, where=where) for raw in raws]
            population = len(catalog.users)
        else:
            refs = [directory.team(catalog, raw, where=where) for raw in raws]
            population = len(catalog.groups)
        unique = list(dict.fromkeys(refs))
        return selections.Selection(
            name=name,
            provider=connecting.PROVIDER,
            kind=target.kind,
            refs=tuple(directory.target_ref(ref) for ref in unique),
            population=population,
        )
