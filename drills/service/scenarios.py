"""Scenario documents for every entry point: checking files (`validate`) and the bundled list.

`check(paths)` loads files and folders, lints them against the built-in catalog of actions
and probes, and returns every problem of every file in one pass (scenarios left out for
their problems are linted as far as they could be salvaged). `validation_view` and
`bundled_scenarios` give the views the CLI prints and the API returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from drills.service import views
from orchestrator.providers import builtin
from scenarios import errors, library, linting, loading


@dataclasses.dataclass(frozen=True)
class Checked:
    """What loaded, and every problem (errors and warnings), sorted by place."""

    result: loading.LoadResult
    problems: tuple[errors.Problem, ...]

    @property
    def errors(self) -> tuple[errors.Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def valid(self) -> bool:
        return not self.errors


def check(paths: Sequence[Path]) -> Checked:
    """Load and lint `paths` (files or folders) with the built-in registry's catalog."""
    result = loading.load_documents(paths)
    catalog = builtin.registry_with_builtins().catalog()
    problems = list(result.problems)
    problems.extend(linting.lint(result.documents, catalog=catalog))
    for partial in result.partial:
        problems.extend(partial.adjust(linting.lint([partial.document], catalog=catalog)))
    unique = loading.unique_problems(problems)
    ordered = sorted(unique, key=lambda p: (p.file, p.line, p.column, p.field))
    return Checked(result=result, problems=tuple(ordered))


def validation_view(checked: Checked) -> views.ValidationView:
    result = checked.result
    return views.ValidationView(
        valid=checked.valid,
        documents=[
            views.DocumentView(kind=d.kind.value, name=d.name, file=str(d.source.path))
            for d in result.documents
        ],
        problems=[views.ProblemView.from_problem(p) for p in checked.problems],
        blocked=[
            views.BlockedView(file=b.file, line=b.line, checks=list(b.checks))
            for b in result.blocked
        ],
    )


def scenario_list(paths: Sequence[Path]) -> views.ScenarioListView:
    """The scenarios found in `paths`, sorted by name, with the problems of those left out."""
    result = loading.load_documents(paths)
    shown = []
    for doc in sorted(result.scenarios(), key=lambda d: d.name):
        spec = doc.model.spec
        rto = spec.objectives.rto
        shown.append(
            views.ScenarioSummaryView(
                name=doc.name,
                failure_mode=spec.failure_mode.value,
                rto=str(rto) if rto is not None else None,
                description=spec.description,
                file=str(doc.source.path),
            )
        )
    return views.ScenarioListView(
        scenarios=shown, problems=[views.ProblemView.from_problem(p) for p in result.problems]
    )


def bundled_scenarios() -> views.ScenarioListView:
    """The bundled scenario library."""
    return scenario_list(library.bundled_paths())
