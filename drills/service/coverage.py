"""Coverage service: which services are drilled for which failure modes, how recently, how well.

What `stormdrill coverage` prints and the API returns: the matrix of the CMDB's services
against the failure modes (the catalog's, the bundled scenarios' and the policy's), judged
by the coverage policy from the finished runs in the store. `matrix` gives the domain
object (the text, Markdown, HTML and CSV renderings take it); `coverage` its view.
Errors: `PolicyInvalid` for a policy that cannot be read.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from drills.service import views
from orchestrator import journal
from orchestrator.cmdb import models as cmdb_models
from reports import coverage as coverage_mod
from reports import pictures, policy
from scenarios import library, loading


def declared_modes() -> list[str]:
    """The failure mode of every bundled scenario (each is a column even if nothing needs it)."""
    return [loading.load_scenario(p).model.spec.failure_mode.value for p in library.bundled_paths()]


def matrix(
    store: journal.Journal,
    *,
    catalog: cmdb_models.Catalog,
    policy_path: Path | None,
    now: dt.datetime,
) -> coverage_mod.Matrix:
    """The coverage matrix of `catalog` under the policy (default: the shipped one) at `now`."""
    rules = policy.load(policy_path)
    modes = declared_modes()
    runs = coverage_mod.load_summaries(store, catalog=catalog)
    return coverage_mod.build_matrix(
        catalog=catalog, rules=rules, runs=runs, now=now, extra_modes=modes
    )


def coverage(
    store: journal.Journal,
    *,
    catalog: cmdb_models.Catalog,
    policy_path: Path | None,
    now: dt.datetime,
) -> views.CoverageView:
    """`matrix` as its view (every field of every cell, and the roll-ups)."""
    built = matrix(store, catalog=catalog, policy_path=policy_path, now=now)
    return views.CoverageView.from_matrix(built)


def trend(
    store: journal.Journal,
    *,
    catalog: cmdb_models.Catalog,
    policy_path: Path | None,
    now: dt.datetime,
    weeks: int = 8,
) -> list[pictures.WeekCount]:
    """Fresh passes per failure mode at the end of each of the last `weeks` weeks (the
    coverage HTML's trend picture), under the same policy and catalog as `matrix`."""
    rules = policy.load(policy_path)
    runs = coverage_mod.load_summaries(store, catalog=catalog)
    return pictures.weekly_fresh(catalog=catalog, rules=rules, runs=runs, now=now, weeks=weeks)
