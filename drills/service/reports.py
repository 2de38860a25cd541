"""Reports: build and write a finished run's post-mortem (md, html, json) and JUnit, once.

The one place every entry point writes a run's reports: `stormdrill run`, `recover` (for
each run it finishes) and the demo. Invariants: reports are written only for a finished
run, under `reports_dir/<run id>/`, private; a run recovery finishes gets the CMDB of the
Environment it recorded, and an unreadable CMDB drops only the CMDB's part (the warning
says how to rebuild them). Nothing here prints: callers present `RunReports`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drills import settings as settings_mod
from drills.service import catalogs
from orchestrator import journal, states
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from reports import junit, writing
from scenarios import errors, loading, models


@dataclasses.dataclass(frozen=True)
class RunReports:
    """Where a run's reports went, and what a person should know about them."""

    run_id: states.RunId
    written: writing.Written
    junit: Path | None = None
    """The extra JUnit file asked for (`--junit PATH`), when there was one."""
    warning: str | None = None
    """Why the reports lack something (the CMDB could not be read)."""

    @property
    def postmortem(self) -> Path:
        return self.written.markdown


def write(
    config: settings_mod.Settings,
    store: journal.Journal,
    run: states.Run,
    *,
    catalog: cmdb_models.Catalog | None,
    junit_path: Path | None = None,
    scenario: models.Scenario | None = None,
    warning: str | None = None,
) -> RunReports:
    """Write `run`'s post-mortem and JUnit under `config.reports_dir`; also `junit_path`.

    `junit_path` (the CLI's `--junit`) needs the run's rendered `scenario`.
    """
    written = writing.write_for_run(run, store, catalog, config.reports_dir)
    extra: Path | None = None
    if junit_path is not None and scenario is not None:
        extra = junit.write(junit_path, run=run, events=store.events(run.id), scenario=scenario)
    return RunReports(run_id=run.id, written=written, junit=extra, warning=warning)


def write_recovered(
    config: settings_mod.Settings, store: journal.Journal, run_id: states.RunId
) -> RunReports | None:
    """Reports for a run recovery finished; None while it is not finished.

    Its CMDB comes from its recorded Environment. A run recovery could not finish (its
    environment unreadable) gets none yet: the next recovery that finishes it writes them.
    """
    run = store.get_run(run_id)
    if not run.terminal:
        return None
    catalog: cmdb_models.Catalog | None = None
    warning: str | None = None
    try:
        environment = loading.load_environment(Path(run.environment_source)).model
        catalog = catalogs.catalog_for(config, environment, ())
    except (errors.StormdrillError, cmdb_errors.CmdbError) as exc:
        warning = (
            f"run {run_id}: reports without the CMDB ({exc}); "
            "rebuild them with `stormdrill report RUN --cmdb PATH`"
        )
    return write(config, store, run, catalog=catalog, warning=warning)
