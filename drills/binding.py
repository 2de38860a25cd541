"""Binding: turn command-line input (a Drill or Scenario, `--env`, `--set`) into a DrillInput.

`--env` takes a file, or a name looked up as `<name>.yaml`, `<name>.environment.yaml`
in the environment folders (settings), then in the bundled examples. `--set k=v`
values are typed by the scenario's parameter declarations. Errors name file:line:field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator import engine as engine_mod
from orchestrator import journal, mutations, planning, registry
from orchestrator.cmdb import models as cmdb_models
from orchestrator.providers import builtin
from scenarios import documents, errors, loading, models, parameters, substituting

EXAMPLES = Path(__file__).resolve().parent / "examples"


class BindingError(errors.StormdrillError):
    """The command line does not name a runnable drill."""


@dataclasses.dataclass(frozen=True)
class Bound:
    """A drill ready to plan or run, and where its parts came from."""

    drill: planning.DrillInput
    environment_path: Path


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """`["zone=us-east-1b", "maxNodes=2"]` → a mapping; a pair without `=` is an error."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BindingError(f"--set {pair!r}: write NAME=VALUE, e.g. --set zone=us-east-1b")
        values[name.strip()] = value
    return values


def find_environment(ref: str, *, search: Sequence[Path]) -> Path:
    """The Environment file `ref` names: a path, or a name in the search folders."""
    candidate = Path(ref)
    if candidate.suffix in loading.YAML_SUFFIXES or "/" in ref:
        if candidate.is_file():
            return candidate.resolve()
        raise BindingError(f"--env {ref}: no such file")
    folders = [*search, EXAMPLES]
    for folder in folders:
        for name in (f"{ref}.yaml", f"{ref}.environment.yaml", f"{ref}.yml"):
            path = folder / name
            if path.is_file():
                return path.resolve()
    result = loading.load_documents([f for f in folders if f.is_dir()])
    match = result.find(models.Kind.ENVIRONMENT, ref)
    if match is not None:
        return match.source.path
    shown = ", ".join(str(f) for f in folders)
    raise BindingError(f"--env {ref}: no Environment named {ref!r} (looked in {shown})")


def bind(
    target: str,
    *,
    env: str | None,
    sets: Sequence[str],
    approvals: Sequence[str] = (),
    env_search: Sequence[Path] = (),
) -> Bound:
    """Load a Drill (file) or Scenario (file or bundled name) and bind it to an Environment."""
    path = Path(target)
    drill_doc: documents.Loaded[models.Drill] | None = None
    if path.is_file():
        result = loading.load_documents([path])
        result.raise_for_problems()
        drills, scenarios = result.drills(), result.scenarios()
        if drills:
            drill_doc = drills[0]
            scenario_path = loading.resolve_reference(
                drill_doc.model.spec.scenario,
                kind=models.Kind.SCENARIO,
                relative_to=drill_doc.folder,
            )
            scenario_doc = loading.load_scenario(scenario_path)
        elif scenarios:
            scenario_doc = scenarios[0]
        else:
            raise BindingError(f"{target}: holds no Scenario or Drill document")
    else:
        scenario_doc = loading.load_scenario(
            loading.resolve_reference(target, kind=models.Kind.SCENARIO, relative_to=Path.cwd())
        )
    env_ref = env or (drill_doc.model.spec.environment if drill_doc else None)
    if env_ref is None:
        raise BindingError(f"{target}: name an environment with --env NAME|FILE")
    search = list(env_search)
    if drill_doc is not None and env is None:
        search.insert(0, drill_doc.folder)
    env_path = find_environment(env_ref, search=search)
    environment = loading.load_environment(env_path)
    values: dict[str, parameters.ParamInput] = {}
    if drill_doc is not None:
        values.update(drill_doc.model.spec.parameters)
    values.update(parse_sets(sets))
    env_values: Mapping[str, parameters.ParamInput] = dict(environment.model.spec.parameters)
    bound = substituting.bind(scenario_doc, values, environment=env_values)
    scenario = substituting.render_bound(scenario_doc, bound)
    recorded = [a.by for a in drill_doc.model.spec.approvals] if drill_doc else []
    drill = planning.DrillInput(
        scenario=scenario,
        scenario_source=str(scenario_doc.source.path),
        environment=environment.model,
        environment_source=str(env_path),
        parameters={name: _json(value) for name, value in bound.items()},
        approvals=(*recorded, *approvals),
        drill=drill_doc.name if drill_doc else None,
    )
    return Bound(drill=drill, environment_path=env_path)


def _json(value: parameters.ParamValue) -> mutations.JsonValue:
    """A bound parameter as JSON for the run record (durations and percents as written)."""
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def make_registry() -> registry.Registry:
    """Every built-in provider's actions, probes, resolvers, sweepers and opt-in lookup."""
    return builtin.registry_with_builtins()


def make_engine(
    *,
    store: journal.Journal,
    catalog: cmdb_models.Catalog | None,
    config: engine_mod.EngineConfig,
    killswitch_file: Path | None,
) -> engine_mod.Engine:
    return engine_mod.Engine(
        store=store,
        reg=make_registry(),
        config=config,
        catalog=catalog,
        killswitch_file=killswitch_file,
    )
