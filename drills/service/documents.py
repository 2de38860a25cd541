"""Documents: the Scenarios, Environments and Drills an entry point may list, show and run.

`Folders` names where documents come from: the scenario folders (then the bundled
library), the environment folders and the drill folders (Drill documents are also looked
for in the scenario and environment folders). Lookups by name return the first match in
that order. A document named by path must lie inside one of those folders (or the bundled
library): a caller over the network cannot make the server read any other file.
Invariants: views never carry a secret (`views.EnvironmentView` describes access, never
credentials); nothing here reads the process environment. Errors: `NotFound` (no document
of that name: 404 in the API), `ScenarioInvalid` (an unknown scenario, placed at the folder
looked in), `binding.BindingError` (a path outside the folders).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from drills import binding
from drills.service import runs as run_service
from drills.service import views
from scenarios import documents, errors, library, loading, models


class NotFound(errors.StormdrillError):
    """No document of that kind and name in the configured folders."""


@dataclasses.dataclass(frozen=True)
class Folders:
    """Where documents come from (each may be empty: the bundled library is always there)."""

    scenarios: tuple[Path, ...] = ()
    environments: tuple[Path, ...] = ()
    drills: tuple[Path, ...] = ()

    def scenario_paths(self) -> list[Path]:
        """The scenario folders that exist, then the bundled library's files."""
        return [*_existing(self.scenarios), *library.bundled_paths()]

    def drill_paths(self) -> list[Path]:
        return _existing(_unique((*self.drills, *self.scenarios, *self.environments)))

    def environment_paths(self) -> list[Path]:
        return _existing(self.environments)


def _existing(paths: Sequence[Path]) -> list[Path]:
    return [p for p in paths if p.exists()]


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def _problems(result: loading.LoadResult) -> list[views.ProblemView]:
    return [views.ProblemView.from_problem(p) for p in result.problems]


# ---- scenarios ------------------------------------------------------------------------------


def scenario_list(folders: Folders) -> views.ScenarioListView:
    """Every scenario of the folders and the bundled library, by name (the first of a name)."""
    result = loading.load_documents(folders.scenario_paths())
    shown: dict[str, views.ScenarioSummaryView] = {}
    for doc in result.scenarios():
        if doc.name in shown:
            continue
        spec = doc.model.spec
        shown[doc.name] = views.ScenarioSummaryView(
            name=doc.name,
            failure_mode=spec.failure_mode.value,
            rto=str(spec.objectives.rto) if spec.objectives.rto is not None else None,
            description=spec.description,
            file=str(doc.source.path),
        )
    return views.ScenarioListView(
        scenarios=[shown[name] for name in sorted(shown)], problems=_problems(result)
    )


def find_scenario(folders: Folders, name: str) -> documents.Loaded[models.Scenario]:
    """The scenario `name` (the folders first, then the bundled library); `NotFound`."""
    result = loading.load_documents(folders.scenario_paths())
    for doc in result.scenarios():
        if doc.name == name:
            return doc
    known = sorted({doc.name for doc in result.scenarios()})
    raise NotFound(f"no Scenario named {name!r} ({_hint(name, known)})")


def scenario(folders: Folders, name: str) -> views.ScenarioView:
    doc = find_scenario(folders, name)
    return views.ScenarioView.from_scenario(
        doc.model, file=str(doc.source.path), bundled=library.is_bundled(doc.source.path)
    )


def _hint(name: str, known: Sequence[str]) -> str:
    return models.did_you_mean(name, tuple(known)) or f"known: {', '.join(known) or 'none'}"


# ---- environments ---------------------------------------------------------------------------


def _environments(folders: Folders) -> tuple[loading.LoadResult, dict[str, Path]]:
    paths = folders.environment_paths()
    result = loading.load_documents(paths) if paths else loading.LoadResult((), ())
    found: dict[str, Path] = {}
    for doc in result.environments():
        found.setdefault(doc.name, doc.source.path)
    return result, found


def environment_list(folders: Folders) -> views.EnvironmentListView:
    """Every Environment of the environment folders, by name (never a secret)."""
    result, _ = _environments(folders)
    seen: dict[str, views.EnvironmentSummaryView] = {}
    for doc in result.environments():
        spec = doc.model.spec
        seen.setdefault(
            doc.name,
            views.EnvironmentSummaryView(
                name=doc.name,
                file=str(doc.source.path),
                protected=spec.protected or spec.approvals.required > 0,
                approvals_required=spec.approvals.required,
                labels=dict(doc.model.metadata.labels),
            ),
        )
    return views.EnvironmentListView(
        environments=[seen[name] for name in sorted(seen)], problems=_problems(result)
    )


def find_environment(folders: Folders, name: str) -> documents.Loaded[models.Environment]:
    """The Environment `name` of the environment folders; `NotFound`."""
    _, found = _environments(folders)
    path = found.get(name)
    if path is None:
        shown = ", ".join(str(f) for f in folders.environments) or "no folder configured"
        raise NotFound(
            f"no Environment named {name!r} in the environment folders ({shown};"
            f" STORMDRILL_ENVIRONMENT_DIRS); {_hint(name, sorted(found))}"
        )
    return loading.load_environment(path)


def environment(folders: Folders, name: str) -> views.EnvironmentView:
    doc = find_environment(folders, name)
    return views.EnvironmentView.from_environment(doc.model, file=str(doc.source.path))


# ---- drills ---------------------------------------------------------------------------------


def _drills(folders: Folders) -> loading.LoadResult:
    paths = folders.drill_paths()
    return loading.load_documents(paths) if paths else loading.LoadResult((), ())


def drill_list(folders: Folders) -> views.DrillListView:
    """Every Drill document of the folders, by name (parameters' secrets masked)."""
    result = _drills(folders)
    seen: dict[str, views.DrillView] = {}
    for doc in result.drills():
        seen.setdefault(doc.name, views.DrillView.from_drill(doc.model, file=str(doc.source.path)))
    return views.DrillListView(drills=[seen[n] for n in sorted(seen)], problems=_problems(result))


def find_drill(folders: Folders, name: str) -> documents.Loaded[models.Drill]:
    result = _drills(folders)
    for doc in result.drills():
        if doc.name == name:
            return doc
    raise NotFound(
        f"no Drill named {name!r} ({_hint(name, sorted(d.name for d in result.drills()))})"
    )


def drill(folders: Folders, name: str) -> views.DrillView:
    doc = find_drill(folders, name)
    return views.DrillView.from_drill(doc.model, file=str(doc.source.path))


# ---- what a run request names -----------------------------------------------------------------


def _is_path(ref: str) -> bool:
    return "/" in ref or ref.endswith(loading.YAML_SUFFIXES)


def _inside(ref: str, roots: Sequence[Path], *, what: str, variable: str) -> Path:
    """The file `ref` names, relative to (and inside) one of `roots`; `BindingError` if not."""
    for root in roots:
        base = root.resolve()
        candidate = (base / ref).resolve() if not Path(ref).is_absolute() else Path(ref).resolve()
        if candidate.is_file() and (candidate == base or candidate.is_relative_to(base)):
            return candidate
    shown = ", ".join(str(r) for r in roots) or "none configured"
    raise binding.BindingError(
        f"{what} {ref!r}: no such file inside the configured folders ({shown}); name a"
        f" document, or add its folder to {variable}"
    )


def resolve_target(folders: Folders, ref: str) -> str:
    """The file of what a run request's `scenario` names: a Scenario (the folders, then
    the bundled library), else a Drill of that name, else a file inside those folders.

    An unknown name raises `ScenarioInvalid` placed at the first folder looked in, with
    the names it knows.
    """
    if _is_path(ref):
        roots = [*folders.scenarios, *folders.drills, library.folder()]
        return str(_inside(ref, roots, what="scenario", variable="STORMDRILL_SCENARIO_DIRS"))
    search = _existing(folders.scenarios)
    try:
        return str(
            loading.resolve_reference(
                ref,
                kind=models.Kind.SCENARIO,
                relative_to=search[0] if search else library.folder(),
                search=search,
            )
        )
    except errors.ScenarioInvalid:
        for doc in _drills(folders).drills():
            if doc.name == ref:
                return str(doc.source.path)
        raise


def resolve_environment(folders: Folders, ref: str) -> str:
    """The file of what a run request's `environment` names: a name or a file of the
    environment folders (`NotFound`, `BindingError` otherwise)."""
    if _is_path(ref):
        return str(
            _inside(
                ref,
                list(folders.environments),
                what="environment",
                variable="STORMDRILL_ENVIRONMENT_DIRS",
            )
        )
    return str(find_environment(folders, ref).source.path)


def _set_text(value: object) -> str:
    """A JSON parameter value as `--set` text (lists comma-separated, booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_set_text(item) for item in value)
    return str(value)


def drill_request(
    folders: Folders,
    *,
    scenario: str,
    environment: str | None,
    parameters: Mapping[str, object],
) -> run_service.DrillRequest:
    """What a run or plan request names, as the service's `DrillRequest`: the scenario (or
    Drill) and Environment resolved in the folders, the parameters as `NAME=VALUE`.

    A Drill's scenario and environment are looked up in the folders as well (a path
    relative to the Drill's file); the request's environment and parameters win over the
    Drill's.
    """
    target = resolve_target(folders, scenario)
    sets = [f"{name}={_set_text(value)}" for name, value in parameters.items()]
    loaded = loading.load_documents([Path(target)])
    drills = loaded.drills()
    if not drills:
        return run_service.DrillRequest(
            target=target,
            environment=None if environment is None else resolve_environment(folders, environment),
            sets=tuple(sets),
        )
    drill_doc = drills[0]
    spec = drill_doc.model.spec
    inner = Folders(
        scenarios=(drill_doc.folder, *folders.scenarios),
        environments=(drill_doc.folder, *folders.environments),
        drills=folders.drills,
    )
    scenario_file = (
        str((drill_doc.folder / spec.scenario).resolve())
        if _is_path(spec.scenario)
        else resolve_target(inner, spec.scenario)
    )
    env_ref = environment if environment is not None else spec.environment
    env_file = (
        resolve_environment(inner, env_ref)
        if environment is not None or not _is_path(env_ref)
        else str((drill_doc.folder / env_ref).resolve())
    )
    drill_sets = [f"{name}={_set_text(value)}" for name, value in spec.parameters.items()]
    return run_service.DrillRequest(
        target=scenario_file,
        environment=env_file,
        sets=(*drill_sets, *sets),
        approvals=tuple(str(a.by) for a in spec.approvals),
        drill=drill_doc.name,
    )
