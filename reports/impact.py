"""Impact: the services a run's fault reached (or a finding flagged), and who owns them.

`reached` is the one answer to "which CMDB services did this run reach": the rows the
engine recorded at plan time (`record.impact`: the services its targets belong to — by
label selector, `kubernetes-id`, AWS tags and ids, vendor CIDRs — plus `spec.services`,
and everything depending on them), so a catalog changed since cannot change it. The
post-mortem's impact table and the coverage matrix both read it. `impact_of` turns it
into report rows, filled in from the CMDB catalog (title, people, on-call, RTO/RPO) where
the service is still there. `with_findings` labels rows with their findings and adds a
"flagged by analysis" row for each service a finding names but the fault did not reach.
`Owners` answers which service and owning team a signal (a probe name) speaks of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from orchestrator import states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from reports.run_facts import short_name
from reports.sections import FindingRow, ImpactRow
from scenarios import models


@dataclasses.dataclass(frozen=True)
class Reached:
    """One service a run reached: its canonical ref and how far from a target."""

    ref: str
    distance: int
    """0 for a targeted service, 1 for a direct dependent, …"""
    path: tuple[str, ...] = ()
    """Refs from the target to this service, both included; () when not recorded."""
    tier: int | None = None
    owner: str | None = None

    @property
    def targeted(self) -> bool:
        return self.distance == 0


def reached(
    run: states.Run, scenario: models.Scenario | None, catalog: cmdb_models.Catalog | None
) -> list[Reached]:
    """The CMDB services `run` reached, as recorded when it was planned (see the docstring).

    A run planned without a CMDB recorded none; then `spec.services` is walked in
    `catalog` (the only services it can be said to have reached).
    """
    found: list[Reached] = []
    for row in run.record.impact_rows:
        found.append(
            Reached(
                ref=row.ref,
                distance=row.distance,
                path=row.path or (),
                tier=row.tier,
                owner=row.owner,
            )
        )
    if found or catalog is None or scenario is None:
        return found
    walked = _walk(catalog, [str(ref) for ref in scenario.spec.services])
    return [
        Reached(
            ref=str(item.ref),
            distance=item.distance,
            path=tuple(str(ref) for ref in item.path),
            tier=item.tier,
            owner=str(item.owner),
        )
        for item in (walked.services if walked is not None else ())
    ]


def _walk(catalog: cmdb_models.Catalog, raws: Sequence[str]) -> cmdb_impact.Impact | None:
    refs = []
    for raw in dict.fromkeys(raws):
        try:
            ref = catalog.lookup(raw)
        except cmdb_errors.CmdbError:
            continue
        if ref in catalog.services or ref in catalog.systems or ref in catalog.apis:
            refs.append(ref)
    return cmdb_impact.impact(catalog, refs) if refs else None


def impact_of(
    run: states.Run,
    scenario: models.Scenario | None,
    catalog: cmdb_models.Catalog | None,
    failure_mode: str,
) -> list[ImpactRow]:
    """The impact table: `reached`, with CMDB details where the catalog still has them.

    A path not recorded (runs planned before paths were) is taken from `catalog`'s walk
    from the recorded targets when it reaches the service, else the service alone.
    """
    found = reached(run, scenario, catalog)
    walked = (
        _walk(catalog, [r.ref for r in found if r.targeted])
        if catalog is not None and any(not r.path for r in found)
        else None
    )
    rows = []
    for item in found:
        path = list(item.path)
        if not path and walked is not None and catalog is not None:
            known = walked.get(catalog.lookup(item.ref)) if _known(catalog, item.ref) else None
            path = [str(ref) for ref in known.path] if known is not None else []
        service = catalog_service(catalog, item.ref)
        if catalog is not None and service is not None:
            rows.append(_catalog_row(service, item, path or [item.ref], catalog, failure_mode))
        else:
            rows.append(_recorded_row(item, path or [item.ref]))
    return rows


def _short(ref: str) -> str:
    """`checkout` for `component:default/checkout`, `shop/checkout` in another namespace."""
    try:
        return cmdb_models.EntityRef.parse(ref).short
    except cmdb_errors.CmdbError:
        return short_name(ref)


def _known(catalog: cmdb_models.Catalog, ref: str) -> bool:
    return catalog_service(catalog, ref) is not None


def _recorded_row(item: Reached, path: Sequence[str]) -> ImpactRow:
    return ImpactRow(
        ref=item.ref,
        name=item.ref.rpartition("/")[2],
        title=None,
        system=None,
        tier=item.tier,
        distance=item.distance,
        path=[_short(ref) for ref in path],
        targeted=item.targeted,
        owner=item.owner.rpartition("/")[2] if item.owner else None,
        owner_people=[],
        on_call=[],
        target_rto_s=None,
        target_rpo_s=None,
    )


def _catalog_row(
    service: cmdb_models.Service,
    item: Reached,
    path: Sequence[str],
    catalog: cmdb_models.Catalog,
    failure_mode: str,
) -> ImpactRow:
    rto = service.objectives.rto_for(failure_mode)
    rpo = service.objectives.rpo_for(failure_mode)
    return ImpactRow(
        ref=str(service.ref),
        name=service.ref.short,
        title=service.title,
        system=service.system.short if service.system else None,
        tier=service.tier,
        distance=item.distance,
        path=[_short(ref) for ref in path],
        targeted=item.targeted,
        owner=service.owner.short,
        owner_people=[ref.short for ref in service.people.owners],
        on_call=[str(r.name) for r in catalog.rotations_for(service.ref)],
        target_rto_s=rto.total_seconds() if rto is not None else None,
        target_rpo_s=rpo.total_seconds() if rpo is not None else None,
    )


class Owners:
    """Who owns what a signal speaks of: probe name -> service -> owning team."""

    def __init__(self, rows: Sequence[ImpactRow], catalog: cmdb_models.Catalog | None) -> None:
        self.rows = list(rows)
        self.catalog = catalog

    def service_for(self, signal: str) -> ImpactRow | None:
        matches = [row for row in self.rows if row.name.rpartition("/")[2] in signal]
        if matches:
            return max(matches, key=lambda row: len(row.name))
        targeted = [row for row in self.rows if row.targeted]
        return targeted[0] if targeted else (self.rows[0] if self.rows else None)

    def owner_for(self, signal: str) -> tuple[str, str | None]:
        row = self.service_for(signal)
        if row is None or not row.owner:
            return "drill owner (no CMDB owner recorded)", row.name if row else None
        return row.owner, row.name


def with_findings(
    rows: Sequence[ImpactRow],
    findings: Sequence[FindingRow],
    catalog: cmdb_models.Catalog | None,
    failure_mode: str,
) -> list[ImpactRow]:
    """Impact rows with their findings, plus a row for each flagged service not reached."""
    labels: dict[str, list[str]] = {}
    for finding in findings:
        if finding.service_ref is None:
            continue
        ref = _canonical(finding.service_ref, catalog)
        label = f"{finding.rule} ({finding.severity})"
        labels.setdefault(ref, [])
        if label not in labels[ref]:
            labels[ref].append(label)
    result: list[ImpactRow] = []
    for row in rows:
        result.append(row.model_copy(update={"findings": labels.pop(row.ref, [])}))
    for ref, found in labels.items():
        service = catalog_service(catalog, ref)
        if catalog is not None and service is not None:
            item = Reached(ref=str(service.ref), distance=0)
            row = _catalog_row(service, item, [item.ref], catalog, failure_mode)
        else:
            row = ImpactRow(
                ref=ref,
                name=short_name(ref),
                title=None,
                system=None,
                tier=None,
                distance=0,
                path=[short_name(ref)],
                targeted=False,
                owner=None,
                owner_people=[],
                on_call=[],
                target_rto_s=None,
                target_rpo_s=None,
            )
        result.append(
            row.model_copy(update={"targeted": False, "flagged": True, "findings": found})
        )
    return result


def catalog_service(catalog: cmdb_models.Catalog | None, ref: str) -> cmdb_models.Service | None:
    if catalog is None:
        return None
    try:
        return catalog.services.get(catalog.lookup(ref))
    except cmdb_errors.CmdbError:
        return None


def _canonical(ref: str, catalog: cmdb_models.Catalog | None) -> str:
    if catalog is None:
        return ref
    try:
        return str(catalog.lookup(ref))
    except cmdb_errors.CmdbError:
        return ref
