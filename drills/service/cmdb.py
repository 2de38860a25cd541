"""CMDB service: the catalog's services, one service, the impact of losing some, a CI check.

What `stormdrill cmdb show|impact|validate` print and the API returns. The functions take
the catalog (see `catalogs.catalog_for`) and return views; the `find_…`/`…_of` functions
give the domain objects behind a view, for the text tables. Errors: `CmdbError` (an
unknown or ambiguous reference, with close names), `CatalogInvalid` (a catalog that
cannot be read), `catalogs.NoCatalog` (nothing names a catalog).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from drills.service import views
from orchestrator.cmdb import backstage, errors, impact
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors as scenario_errors


def sorted_services(catalog: cmdb_models.Catalog) -> list[cmdb_models.Service]:
    """Every service, the most critical tier first, then by ref."""
    return sorted(catalog.services.values(), key=lambda s: (s.tier, s.ref))


def find_service(catalog: cmdb_models.Catalog, ref: str) -> cmdb_models.Service:
    """The service `ref` names (`checkout`, `resource:payments-db`, a full ref)."""
    return catalog.service(catalog.lookup(ref))


def impact_of(catalog: cmdb_models.Catalog, refs: Sequence[str]) -> impact.Impact:
    """The targeted services and everything that depends on them, transitively."""
    targets = [catalog.lookup(raw) for raw in refs]
    return impact.impact(catalog, targets)


def services(catalog: cmdb_models.Catalog) -> views.ServiceListView:
    """Every service in full, as `sorted_services` orders them."""
    return views.ServiceListView(
        services=[
            views.ServiceView.from_service(s, catalog=catalog) for s in sorted_services(catalog)
        ]
    )


def service(catalog: cmdb_models.Catalog, ref: str) -> views.ServiceView:
    """One service in full (what it depends on, what uses it, where it runs, its people)."""
    return views.ServiceView.from_service(find_service(catalog, ref), catalog=catalog)


def impact_view(
    catalog: cmdb_models.Catalog, refs: Sequence[str], *, failure_mode: str | None
) -> views.ImpactView:
    """What losing `refs` reaches, with the RTO/RPO that hold for `failure_mode`."""
    return views.ImpactView.from_impact(impact_of(catalog, refs), failure_mode=failure_mode)


@dataclasses.dataclass(frozen=True)
class CatalogCheck:
    """A catalog checked leniently: every problem (sorted by place), what loaded and what not."""

    problems: tuple[scenario_errors.Problem, ...]
    entities: int
    refused: tuple[str, ...]

    @property
    def errors(self) -> tuple[scenario_errors.Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def valid(self) -> bool:
        return not self.errors

    def view(self) -> views.CatalogCheckView:
        return views.CatalogCheckView(
            valid=self.valid,
            entities=self.entities,
            refused=list(self.refused),
            problems=[views.ProblemView.from_problem(p) for p in self.problems],
        )


def check(paths: Sequence[Path]) -> CatalogCheck:
    """Load the catalog at `paths` for CI: every problem, never an exception for a bad entity.

    A catalog of which nothing at all could be read reports its problems and no entities.
    """
    catalog: cmdb_models.Catalog | None = None
    try:
        catalog = backstage.load_catalog(paths)
        problems = list(catalog.problems)
    except errors.CatalogInvalid as exc:
        problems = list(exc.problems)
    problems.sort(key=lambda p: (p.file, p.line, p.column, p.field))
    return CatalogCheck(
        problems=tuple(problems),
        entities=len(catalog.all_refs()) if catalog is not None else 0,
        refused=tuple(r.what for r in catalog.refused) if catalog is not None else (),
    )
