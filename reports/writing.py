"""Writing: the reports of a finished run, on disk, linted.

`write_for_run` is what the CLI calls after every run (the engine never imports
reports): it records the run's coverage facts once (failure mode and a content hash of
every impacted CMDB service, as a `report-facts` event in the run's timeline, so
coverage can tell later whether a service changed since), then writes
`<reports_dir>/<run id>/postmortem.{md,html,json}` (the HTML with the run's pictures,
`reports.pictures`, built from the redacted report) and `junit.xml`, and lints the
Markdown (a generated report that does not lint clean is a bug: it is logged). The
folders are created 0700 and the files 0600 (reports are private, whatever the umask), and
the post-mortem is masked with the store's redactor (the secrets the run bound).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from orchestrator import journal, mutations, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from reports import (
    evidence,
    fingerprints,
    junit,
    linting,
    pictures,
    postmortem,
    redaction,
    rendering,
)
from scenarios import models

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Written:
    """Where a run's reports went, and what the lint said of the Markdown."""

    folder: Path
    markdown: Path
    html: Path
    json: Path
    junit: Path | None
    findings: tuple[linting.Finding, ...] = ()


def coverage_facts(
    run: states.Run, scenario: models.Scenario | None, catalog: cmdb_models.Catalog | None
) -> dict[str, mutations.JsonValue]:
    """The facts coverage needs of a run: its failure mode, and the hash of each service."""
    hashes: dict[str, mutations.JsonValue] = {}
    if catalog is not None:
        for row in run.record.impact_rows:
            try:
                ref = catalog.lookup(row.ref)
            except cmdb_errors.CmdbError:
                continue
            if ref in catalog.services:
                hashes[str(ref)] = fingerprints.of_service(catalog.services[ref])
    mode = scenario.spec.failure_mode.value if scenario is not None else None
    return {"failure_mode": mode, "fingerprints": hashes}


def record_facts(
    store: journal.Journal,
    run: states.Run,
    *,
    scenario: models.Scenario | None,
    catalog: cmdb_models.Catalog | None,
) -> None:
    """Append the run's `report-facts` event, unless it has one already (idempotent)."""
    if store.events(run.id, kind=evidence.FACTS_KIND):
        return
    store.append_event(
        run.id,
        kind=evidence.FACTS_KIND,
        message="coverage facts: failure mode and CMDB entry hashes at the time of the run",
        data=coverage_facts(run, scenario, catalog),
    )


def write_for_run(
    run: states.Run,
    store: journal.Journal,
    catalog: cmdb_models.Catalog | None,
    reports_dir: Path,
) -> Written:
    """Write every report of the finished `run` under `reports_dir/<run id>/`."""
    scenario = evidence.scenario_for(run)
    record_facts(store, run, scenario=scenario, catalog=catalog)
    run_evidence = evidence.load(store, run.id)
    report = postmortem.build_postmortem(
        run_evidence, scenario, cmdb=catalog, redactor=store.redactor
    )
    figures = pictures.pictures_of(run_evidence, report, redactor=store.redactor)
    folder = redaction.private_folder(reports_dir / run.id)
    paths = {}
    for fmt in rendering.Format:
        path = folder / f"postmortem{fmt.suffix}"
        redaction.write_private(path, rendering.render(report, fmt, figures=figures))
        paths[fmt] = path
    junit_path: Path | None = None
    if scenario is not None:
        junit_path = junit.write(
            folder / "junit.xml",
            run=run_evidence.run,
            events=run_evidence.events,
            scenario=scenario,
        )
    findings = linting.lint(
        paths[rendering.Format.MARKDOWN].read_text(encoding="utf-8"),
        people=linting.people_names(catalog),
    )
    for finding in findings:
        log.error(
            "generated report is not blameless: %s",
            finding.format(str(paths[rendering.Format.MARKDOWN])),
        )
    return Written(
        folder=folder,
        markdown=paths[rendering.Format.MARKDOWN],
        html=paths[rendering.Format.HTML],
        json=paths[rendering.Format.JSON],
        junit=junit_path,
        findings=tuple(findings),
    )
