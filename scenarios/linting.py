"""Linting: semantic checks across a document's parts and across documents.

Rules (each problem names file:line and field):
- references resolve: a step's `target` names a `spec.targets` entry; a step's `probe` and an
  `abortWhen.probe` name a `steadyState` probe; probe and step names are unique;
- actions and probe types exist in the engine's catalog (did-you-mean hint); known ones have
  their `with:` checked against the catalog's params model;
- an action's target has a kind the action accepts; a destructive action's target has a
  `blastRadius`;
- revertibility: a mutating step is undone by the engine (`rollback: auto`, the default,
  and the action is revertible), or it says `rollback: none` and either a `spec.rollback`
  step acts on the same target (an explicit compensation) or `irreversible: <why>` says
  why nothing needs undoing;
- `objectives.rto` is set unless the failure mode is `custom`;
- a protected environment requires at least one approval;
- a drill's parameters are declared by its scenario and have the declared types, its
  environment is one the scenario allows, and the environment allows the failure mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pydantic

from scenarios import catalog as catalogs
from scenarios import (
    diagnostics,
    documents,
    errors,
    models,
    parameters,
    reading,
    substituting,
)

AnyLoaded = (
    documents.Loaded[models.Scenario]
    | documents.Loaded[models.Drill]
    | documents.Loaded[models.Environment]
)
_WARNING = "warning"


def lint(
    loaded: Sequence[AnyLoaded],
    *,
    catalog: catalogs.Catalog,
) -> list[errors.Problem]:
    """Every semantic problem in `loaded`, sorted by file and line."""
    problems: list[errors.Problem] = []
    for doc in loaded:
        if isinstance(doc.model, models.Scenario):
            scenario = _as_scenario(doc)
            problems.extend(reference_problems(scenario))
            problems.extend(_ScenarioLint(scenario, catalog=catalog).run())
        elif isinstance(doc.model, models.Environment):
            problems.extend(_environment_problems(doc.model, tree=doc.tree))
        else:
            problems.extend(_drill_problems(doc, loaded))
    return sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field, p.message))


def reference_problems(doc: documents.Loaded[models.Scenario]) -> list[errors.Problem]:
    """Unresolved or duplicate names inside one scenario."""
    spec = doc.model.spec
    tree = doc.tree
    problems: list[errors.Problem] = []
    probes = tuple(probe.name for probe in spec.steady_state)
    targets = tuple(spec.targets)
    problems.extend(_duplicate_names(tree, ("spec", "steadyState"), probes, "probe"))
    problems.extend(_duplicate_step_names(tree, spec))
    for path, step in _steps(spec):
        if step.target is not None and step.target not in spec.targets:
            problems.append(
                _unknown(tree, (*path, "target"), "target", step.target, targets, "spec.targets")
            )
        if step.probe is not None and step.probe not in probes:
            problems.append(
                _unknown(tree, (*path, "probe"), "probe", step.probe, probes, "spec.steadyState")
            )
    for index, condition in enumerate(spec.guardrails.abort_when):
        if condition.probe is not None and condition.probe not in probes:
            path = ("spec", "guardrails", "abortWhen", index, "probe")
            problems.append(
                _unknown(tree, path, "probe", condition.probe, probes, "spec.steadyState")
            )
    return problems


def _as_scenario(doc: AnyLoaded) -> documents.Loaded[models.Scenario]:
    assert isinstance(doc.model, models.Scenario)
    return documents.Loaded(source=doc.source, model=doc.model, tree=doc.tree)


def _steps(spec: models.ScenarioSpec) -> Iterable[tuple[reading.TreePath, models.Step]]:
    for index, step in enumerate(spec.steps):
        yield ("spec", "steps", index), step
    for index, step in enumerate(spec.rollback):
        yield ("spec", "rollback", index), step


class _ScenarioLint:
    def __init__(
        self,
        doc: documents.Loaded[models.Scenario],
        *,
        catalog: catalogs.Catalog,
    ) -> None:
        self.doc = doc
        self.spec = doc.model.spec
        self.tree = doc.tree
        self.catalog = catalog
        declared, _ = substituting.declared_parameters(doc.tree)
        preview = substituting.expand_with_placeholders(doc.tree, declared=declared)
        self.preview = preview.tree
        self.placeholder_paths = preview.placeholder_paths
        self.problems: list[errors.Problem] = []

    def run(self) -> list[errors.Problem]:
        for path, step in _steps(self.spec):
            if step.action is not None:
                self._action_step(path, step, is_rollback=path[1] == "rollback")
        for index, probe in enumerate(self.spec.steady_state):
            self._probe(("spec", "steadyState", index), probe)
        self._objectives()
        self._duration_budget()
        return self.problems

    def _action_step(self, path: reading.TreePath, step: models.Step, *, is_rollback: bool) -> None:
        assert step.action is not None
        info = self.catalog.actions.get(step.action)
        if info is None:
            hint = models.did_you_mean(step.action, tuple(self.catalog.actions))
            self._add(
                (*path, "action"),
                f"unknown action '{step.action}'",
                hint=hint or "run 'stormdrill actions' to list the available actions",
            )
            return
        self._params(path, info.params, step.params, what=f"action '{info.name}'")
        target = self.spec.targets.get(step.target) if step.target is not None else None
        if info.target_kinds and step.target is None:
            self._add(
                path,
                f"action '{info.name}' needs a 'target'"
                f" (of kind {', '.join(sorted(info.target_kinds))})",
            )
        if target is not None and info.target_kinds and target.kind not in info.target_kinds:
            self._add(
                (*path, "target"),
                f"action '{info.name}' cannot act on target '{step.target}' of kind"
                f" '{target.kind}' (it accepts {', '.join(sorted(info.target_kinds))})",
            )
        if target is not None and not info.target_kinds:
            self._add((*path, "target"), f"action '{info.name}' takes no target")
        if info.destructive and target is not None and target.blast_radius is None:
            self._add(
                (*path, "target"),
                f"action '{info.name}' is destructive but target '{step.target}' has no"
                " blastRadius",
                hint=f"add 'blastRadius: {{max: …}}' to spec.targets.{step.target}",
            )
        if not is_rollback:
            self._revertible(path, step, info)

    def _revertible(
        self, path: reading.TreePath, step: models.Step, info: catalogs.ActionInfo
    ) -> None:
        if not info.mutating:
            if step.rollback is models.RollbackPolicy.NONE:
                self._add(
                    (*path, "rollback"),
                    f"'rollback: none' has no effect: action '{info.name}' changes nothing",
                    severity=_WARNING,
                )
            return
        if step.rollback is models.RollbackPolicy.AUTO:
            if not info.revertible:
                self._add(
                    (*path, "action"),
                    f"action '{info.name}' cannot be undone automatically",
                    hint="set 'rollback: none' and add a compensating step under"
                    " spec.rollback, or explain with 'irreversible: <why>'",
                )
            return
        compensated = step.target is not None and any(
            extra.target == step.target for extra in self.spec.rollback
        )
        if not compensated and step.irreversible is None:
            self._add(
                (*path, "rollback"),
                f"step '{step.name}' turns off rollback but nothing undoes it",
                hint=f"add a spec.rollback step acting on target '{step.target}', or say"
                " why no undo is needed with 'irreversible: <why>'",
            )

    def _probe(self, path: reading.TreePath, probe: models.Probe) -> None:
        info = self.catalog.probes.get(probe.type)
        if info is None:
            hint = models.did_you_mean(probe.type, tuple(self.catalog.probes))
            self._add(
                (*path, "type"),
                f"unknown probe type '{probe.type}'",
                hint=hint or "run 'stormdrill actions' to list the available probes",
            )
            return
        self._params(path, info.params, probe.params, what=f"probe type '{info.name}'")

    def _params(
        self,
        path: reading.TreePath,
        model: type[pydantic.BaseModel] | None,
        given: Mapping[str, pydantic.JsonValue],
        *,
        what: str,
    ) -> None:
        with_path = (*path, "with")
        if model is None:
            if given:
                self._add(with_path, f"{what} takes no parameters ('with')")
            return
        found, raw = self.preview.get(with_path)
        data = raw if found and raw is not None else {}
        try:
            model.model_validate(data)
        except pydantic.ValidationError as exc:
            for problem in diagnostics.from_validation(
                exc, tree=self.preview, model=model, base=with_path
            ):
                if not self._from_placeholder(problem.field):
                    self.problems.append(problem)

    def _from_placeholder(self, field: str) -> bool:
        return any(
            field == reading.render_path(path)
            or field.startswith(reading.render_path(path) + ".")
            or field.startswith(reading.render_path(path) + "[")
            for path in self.placeholder_paths
        )

    def _objectives(self) -> None:
        if (
            self.spec.failure_mode is not models.FailureMode.CUSTOM
            and self.spec.objectives.rto is None
        ):
            self._add(
                ("spec", "objectives", "rto"),
                f"failure mode '{self.spec.failure_mode.value}' needs a recovery time objective",
                hint="set spec.objectives.rto, e.g. 'rto: 15m'",
            )

    def _duration_budget(self) -> None:
        planned = sum(step.wait.seconds for step in self.spec.steps if step.wait is not None)
        limit = self.spec.guardrails.max_duration
        if planned > limit.seconds:
            self._add(
                ("spec", "guardrails", "maxDuration"),
                f"the steps wait {planned:g}s in total, longer than maxDuration {limit}",
                hint="raise maxDuration or shorten the waits",
                severity=_WARNING,
            )

    def _add(
        self,
        path: reading.TreePath,
        message: str,
        *,
        hint: str = "",
        severity: str = "error",
    ) -> None:
        self.problems.append(_at(self.tree, path, message, hint=hint, severity=severity))


def _environment_problems(
    env: models.Environment, *, tree: reading.MarkedTree
) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    if env.spec.protected and env.spec.approvals.required < 1:
        problems.append(
            _at(
                tree,
                ("spec", "approvals", "required"),
                f"environment '{env.metadata.name}' is protected but requires no approvals",
                hint="set spec.approvals.required to 1 or more",
            )
        )
    return problems


def _drill_problems(doc: AnyLoaded, loaded: Sequence[AnyLoaded]) -> list[errors.Problem]:
    assert isinstance(doc.model, models.Drill)
    spec = doc.model.spec
    tree = doc.tree
    scenario = _referenced(spec.scenario, models.Scenario, doc=doc, loaded=loaded)
    environment = _referenced(spec.environment, models.Environment, doc=doc, loaded=loaded)
    problems: list[errors.Problem] = []
    if isinstance(scenario, models.Scenario):
        declared = scenario.spec.parameters
        for name, value in spec.parameters.items():
            path = ("spec", "parameters", name)
            declaration = declared.get(name)
            if declaration is None:
                problems.append(
                    _at(
                        tree,
                        path,
                        key=True,
                        message=f"scenario '{scenario.metadata.name}' has no parameter '{name}'",
                        hint=models.did_you_mean(name, tuple(declared))
                        or f"declared: {', '.join(sorted(declared)) or 'none'}",
                    )
                )
                continue
            try:
                coerced = parameters.coerce(value, type_=declaration.type, items=declaration.items)
                allowed = declaration.typed_enum()
                if allowed is not None:
                    models.check_enum(coerced, allowed)
            except ValueError as exc:
                problems.append(_at(tree, path, f"invalid value for '{name}': {exc}"))
    if isinstance(scenario, models.Scenario) and isinstance(environment, models.Environment):
        allowed_envs = scenario.spec.guardrails.environments
        if environment.metadata.name not in allowed_envs:
            problems.append(
                _at(
                    tree,
                    ("spec", "environment"),
                    f"scenario '{scenario.metadata.name}' may run only in"
                    f" {', '.join(allowed_envs)}, not '{environment.metadata.name}'",
                    hint="add the environment to the scenario's guardrails.environments",
                )
            )
        modes = environment.spec.allowed_failure_modes
        if modes is not None and scenario.spec.failure_mode not in modes:
            problems.append(
                _at(
                    tree,
                    ("spec", "environment"),
                    f"environment '{environment.metadata.name}' does not allow failure mode"
                    f" '{scenario.spec.failure_mode.value}'",
                )
            )
    return problems


def _referenced(
    ref: str,
    model: type[models.Scenario] | type[models.Environment],
    *,
    doc: AnyLoaded,
    loaded: Sequence[AnyLoaded],
) -> models.Document | None:
    is_path = "/" in ref or ref.endswith((".yaml", ".yml"))
    target = (doc.folder / ref).resolve() if is_path else None
    for other in loaded:
        if not isinstance(other.model, model):
            continue
        if target is not None and other.source.path.resolve() == target:
            return other.model
        if target is None and other.name == ref:
            return other.model
    return None


def _duplicate_names(
    tree: reading.MarkedTree, base: reading.TreePath, names: Sequence[str], what: str
) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            first = tree.mark_for((*base, seen[name], "name"))
            problems.append(
                _at(
                    tree,
                    (*base, index, "name"),
                    f"{what} name '{name}' is used twice (first on line {first.line})",
                )
            )
        else:
            seen[name] = index
    return problems


def _duplicate_step_names(
    tree: reading.MarkedTree, spec: models.ScenarioSpec
) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    seen: dict[str, reading.TreePath] = {}
    for path, step in _steps(spec):
        if step.name in seen:
            first = tree.mark_for((*seen[step.name], "name"))
            problems.append(
                _at(
                    tree,
                    (*path, "name"),
                    f"step name '{step.name}' is used twice (first on line {first.line})",
                )
            )
        else:
            seen[step.name] = path
    return problems


def _unknown(
    tree: reading.MarkedTree,
    path: reading.TreePath,
    what: str,
    name: str,
    known: Sequence[str],
    where: str,
) -> errors.Problem:
    hint = models.did_you_mean(name, tuple(known))
    return _at(
        tree,
        path,
        f"unknown {what} '{name}'",
        hint=hint or f"{where} defines: {', '.join(known) or 'nothing'}",
    )


def _at(
    tree: reading.MarkedTree,
    path: reading.TreePath,
    message: str,
    *,
    hint: str = "",
    severity: str = "error",
    key: bool = False,
) -> errors.Problem:
    mark = tree.key_mark(path) if key else tree.mark_for(path)
    return errors.Problem(
        file=tree.file,
        line=mark.line,
        column=mark.column,
        field=reading.render_path(path),
        message=message,
        hint=hint,
        severity=severity,
    )
