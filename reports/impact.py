"""Impact: the services a run's fault reached (or a finding flagged), and who owns them.

`impact_of` lists the impacted services from the CMDB catalog (dependency distance,
path, tier, owner, on-call, RTO/RPO objectives) or, without a usable catalog, from the
rows recorded in the run record. `with_findings` labels rows with their findings and
adds a "flagged by analysis" row for each service a finding names but the fault did not
reach. `Owners` answers which service and owning team a signal (a probe name) speaks of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator import mutations, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from reports import evidence as ev
from reports.run_facts import short_name
from reports.sections import FindingRow, ImpactRow
from scenarios import models


def impact_of(
    run: states.Run,
    scenario: models.Scenario | None,
    catalog: cmdb_models.Catalog | None,
    failure_mode: str,
) -> list[ImpactRow]:
    recorded = [row for row in ev.record_list(run.record, "impact") if isinstance(row, Mapping)]
    targeted: list[str] = [
        str(row.get("ref")) for row in recorded if row.get("distance") == 0 and row.get("ref")
    ]
    if scenario is not None:
        targeted += [str(ref) for ref in scenario.spec.services]
    if catalog is None:
        return [_recorded_row(row) for row in recorded]
    refs = []
    for raw in dict.fromkeys(targeted):
        try:
            refs.append(catalog.lookup(raw))
        except cmdb_errors.CmdbError:
            continue
    refs = [r for r in refs if r in catalog.services or r in catalog.systems or r in catalog.apis]
    if not refs:
        return [_recorded_row(row) for row in recorded]
    reached = cmdb_impact.impact(catalog, refs)
    return [_catalog_row(item, catalog, failure_mode) for item in reached.services]


def _recorded_row(row: Mapping[str, mutations.JsonValue]) -> ImpactRow:
    ref = str(row.get("ref", "?"))
    tier = row.get("tier")
    distance = row.get("distance")
    owner = row.get("owner")
    return ImpactRow(
        ref=ref,
        name=ref.rpartition("/")[2],
        title=None,
        system=None,
        tier=tier if isinstance(tier, int) else None,
        distance=distance if isinstance(distance, int) else 0,
        path=[ref.rpartition("/")[2]],
        targeted=distance == 0,
        owner=str(owner).rpartition("/")[2] if owner else None,
        owner_people=[],
        on_call=[],
        target_rto_s=None,
        target_rpo_s=None,
    )


def _catalog_row(
    item: cmdb_impact.ImpactedService, catalog: cmdb_models.Catalog, failure_mode: str
) -> ImpactRow:
    service = item.service
    rto = service.objectives.rto_for(failure_mode)
    rpo = service.objectives.rpo_for(failure_mode)
    return ImpactRow(
        ref=str(service.ref),
        name=service.ref.short,
        title=service.title,
        system=service.system.short if service.system else None,
        tier=service.tier,
        distance=item.distance,
        path=[ref.short for ref in item.path],
        targeted=item.distance == 0,
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
            item = cmdb_impact.ImpactedService(service=service, distance=0, path=(service.ref,))
            row = _catalog_row(item, catalog, failure_mode)
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
