"""Loading: files and folders of YAML into validated Scenario, Drill and Environment documents.

Invariants: loading never raises for bad input — `load_documents` returns every problem it
found (each naming file:line:column and the field as written) next to the documents that
are valid; the `load_scenario`/`load_drill`/`load_environment` conveniences raise
`ScenarioInvalid` with those same problems. A document with any problem is left out whole;
other documents of the same file still load. Scenarios are checked with every parameter at
its default (or a typed placeholder), so template mistakes surface at load time too.

All problems of a document are found in one pass: a broken parameter declaration, a broken
template or a schema error does not hide the checks after it. A scenario that fails schema
validation is salvaged (`Partial`): the parts that failed are pruned, and references (and
`linting.lint`, via `LoadResult.partial`) run on the rest, their problems mapped back to the
lines as written; problems about a pruned part (or a step naming a pruned target or probe)
are not reported, since they cannot be judged. Where a later check cannot run at all (an
unknown kind; a scenario without steps), `LoadResult.blocked` says which checks wait.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, TypeVar

import pydantic

from scenarios import (
    diagnostics,
    errors,
    library,
    linting,
    models,
    reading,
    substituting,
)
from scenarios import (
    documents as docs,
)

YAML_SUFFIXES: Final = (".yaml", ".yml")
SCHEMA: Final = "schema"
REFERENCES: Final = "references"
LINT: Final = "lint"
_SALVAGE_ROUNDS: Final = 25

AnyLoaded = (
    docs.Loaded[models.Scenario] | docs.Loaded[models.Drill] | docs.Loaded[models.Environment]
)
_M = TypeVar("_M", models.Scenario, models.Drill, models.Environment)


@dataclasses.dataclass(frozen=True)
class Blocked:
    """Checks of one document that cannot run until the problems reported for it are fixed."""

    file: str
    line: int
    checks: tuple[str, ...]

    def __str__(self) -> str:
        count = len(self.checks)
        return (
            f"{self.file}:{self.line}: {count} more check{'s' if count > 1 else ''} need the"
            f" errors above fixed first: {', '.join(self.checks)}"
        )


@dataclasses.dataclass(frozen=True)
class Partial:
    """A scenario with problems, salvaged so that the checks after the schema still run.

    `document` is the scenario without the parts that failed validation; its tree is
    re-keyed so every mark still names the line as written. `adjust` maps a later check's
    problems back to the fields as written and drops those about a pruned part.
    """

    document: docs.Loaded[models.Scenario]
    fields: Mapping[str, str]
    """Field of the salvaged document → the same field as written (list items shift)."""
    suppressed: frozenset[str]
    """Fields (salvaged) whose problems cannot be judged: next to or naming a pruned part."""

    def adjust(self, problems: Iterable[errors.Problem]) -> list[errors.Problem]:
        """`problems` of the salvaged document, as the user wrote the fields."""
        return [
            dataclasses.replace(problem, field=_remap(problem.field, self.fields))
            for problem in problems
            if not any(_within(problem.field, field) for field in self.suppressed)
        ]


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """Valid documents (in file order) and every problem found while loading."""

    documents: tuple[AnyLoaded, ...]
    problems: tuple[errors.Problem, ...]
    partial: tuple[Partial, ...] = ()
    """Scenarios left out for their problems, salvaged for the later checks (lint)."""
    blocked: tuple[Blocked, ...] = ()
    """Documents whose later checks could not run at all, and which ones."""

    @property
    def ok(self) -> bool:
        """No error-severity problems."""
        return not any(problem.severity == "error" for problem in self.problems)

    def raise_for_problems(self) -> None:
        """Raise `ScenarioInvalid` unless `ok`."""
        if not self.ok:
            raise errors.ScenarioInvalid(list(self.problems))

    def scenarios(self) -> list[docs.Loaded[models.Scenario]]:
        return _of_kind(self.documents, models.Scenario)

    def drills(self) -> list[docs.Loaded[models.Drill]]:
        return _of_kind(self.documents, models.Drill)

    def environments(self) -> list[docs.Loaded[models.Environment]]:
        return _of_kind(self.documents, models.Environment)

    def find(self, kind: models.Kind, name: str) -> AnyLoaded | None:
        """The loaded document of `kind` named `name`, if any."""
        return next((doc for doc in self.documents if doc.kind is kind and doc.name == name), None)


def _of_kind(loaded: Sequence[AnyLoaded], model: type[_M]) -> list[docs.Loaded[_M]]:
    found: list[docs.Loaded[_M]] = []
    for doc in loaded:
        candidate = doc.model
        if isinstance(candidate, model):
            found.append(docs.Loaded(source=doc.source, model=candidate, tree=doc.tree))
    return found


def load_documents(paths: Sequence[Path]) -> LoadResult:
    """Load YAML files and folders (recursively, `*.yaml`/`*.yml`, sorted)."""
    files, problems = _files(paths)
    loaded: list[AnyLoaded] = []
    partial: list[Partial] = []
    blocked: list[Blocked] = []
    for file in files:
        bundled = library.is_bundled(file)
        read = reading.read_file(file)
        problems.extend(read.problems)
        for index, tree in enumerate(read.trees):
            source = docs.Source(path=file, index=index, line=tree.start.line, bundled=bundled)
            checked = _check_tree(tree, source=source)
            problems.extend(checked.problems)
            if checked.document is not None:
                loaded.append(checked.document)
            if checked.partial is not None:
                partial.append(checked.partial)
            if checked.blocked:
                blocked.append(Blocked(file=tree.file, line=source.line, checks=checked.blocked))
    problems.extend(_duplicates(loaded))
    ordered = sorted(unique_problems(problems), key=lambda p: (p.file, p.line, p.column, p.field))
    return LoadResult(tuple(loaded), tuple(ordered), tuple(partial), tuple(blocked))


def unique_problems(problems: Iterable[errors.Problem]) -> list[errors.Problem]:
    """`problems` without repeats (the same message at the same place, whatever the hint)."""
    seen: set[tuple[str, int, int, str, str]] = set()
    unique: list[errors.Problem] = []
    for problem in problems:
        key = (problem.file, problem.line, problem.column, problem.field, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique


def load_scenario(path: Path) -> docs.Loaded[models.Scenario]:
    """The one Scenario document in `path`; raise `ScenarioInvalid` otherwise."""
    return _load_one(path, models.Scenario, models.Kind.SCENARIO)


def load_drill(path: Path) -> docs.Loaded[models.Drill]:
    """The one Drill document in `path`; raise `ScenarioInvalid` otherwise."""
    return _load_one(path, models.Drill, models.Kind.DRILL)


def load_environment(path: Path) -> docs.Loaded[models.Environment]:
    """The one Environment document in `path`; raise `ScenarioInvalid` otherwise."""
    return _load_one(path, models.Environment, models.Kind.ENVIRONMENT)


def resolve_reference(
    ref: str,
    *,
    kind: models.Kind,
    relative_to: Path,
    search: Sequence[Path] = (),
) -> Path:
    """The file a drill's `scenario:`/`environment:` reference names.

    A reference containing '/' or ending in .yaml/.yml is a path, relative to
    `relative_to` (the drill's folder). Otherwise it is a document name, looked up in the
    `search` folders and then (for scenarios) in the bundled library.
    Raise `ScenarioInvalid` when nothing matches.
    """
    if "/" in ref or ref.endswith(YAML_SUFFIXES):
        path = (relative_to / ref).resolve()
        if path.is_file():
            return path
        raise errors.ScenarioInvalid(
            [_problem(str(path), f"{kind.value} file '{ref}' does not exist")]
        )
    folders = list(search)
    if kind is models.Kind.SCENARIO:
        folders.extend(library.bundled_paths())
    result = load_documents(folders) if folders else LoadResult((), ())
    match = result.find(kind, ref)
    if match is not None:
        return match.source.path
    names = sorted(doc.name for doc in result.documents if doc.kind is kind)
    raise errors.ScenarioInvalid(
        [
            _problem(
                str(relative_to),
                f"no {kind.value} named '{ref}'",
                hint=models.did_you_mean(ref, tuple(names))
                or f"known: {', '.join(names) or 'none'}",
            )
        ]
    )


def validate_tree(
    tree: reading.MarkedTree, *, source: docs.Source
) -> tuple[AnyLoaded | None, list[errors.Problem]]:
    """Check one document's envelope, then validate it as its kind's model."""
    checked = _check_tree(tree, source=source)
    return checked.document, list(checked.problems)


@dataclasses.dataclass(frozen=True)
class _Checked:
    document: AnyLoaded | None
    problems: tuple[errors.Problem, ...]
    partial: Partial | None = None
    blocked: tuple[str, ...] = ()


OTHER_KINDS: dict[str, str] = {
    "GameDay": "`stormdrill gamedays create FILE` checks and stores game days",
}
"""Stormdrill documents other commands read: a folder may hold them next to scenarios and
drills, so loading it skips them with a warning (not the unknown-kind error)."""


def _check_tree(tree: reading.MarkedTree, *, source: docs.Source) -> _Checked:
    data = tree.data
    if not isinstance(data, dict):
        problem = _at(
            tree, (), "a document must be a mapping with apiVersion, kind, metadata and spec"
        )
        return _Checked(None, (problem,), blocked=(SCHEMA, REFERENCES, LINT))
    if data.get("apiVersion") == models.API_VERSION and data.get("kind") in OTHER_KINDS:
        note = _at(
            tree,
            ("kind",),
            f"a {data['kind']} document is not a Scenario, Drill or Environment; skipped here",
            hint=OTHER_KINDS[str(data["kind"])],
        )
        return _Checked(None, (dataclasses.replace(note, severity="warning"),))
    problems = _envelope_problems(tree, data)
    if problems:
        return _Checked(None, tuple(problems), blocked=(SCHEMA, REFERENCES, LINT))
    kind = models.Kind(str(data["kind"]))
    if kind is models.Kind.SCENARIO:
        return _check_scenario(tree, source=source)
    model_type = models.MODELS[kind]
    try:
        model = model_type.model_validate(
            data, by_alias=True, by_name=False, context={"base_dir": source.path.parent}
        )
    except pydantic.ValidationError as exc:
        found = diagnostics.from_validation(exc, tree=tree, model=model_type)
        return _Checked(None, tuple(found), blocked=(LINT,))
    if isinstance(model, models.Drill):
        return _Checked(docs.Loaded(source=source, model=model, tree=tree), ())
    assert isinstance(model, models.Environment)
    return _Checked(docs.Loaded(source=source, model=model, tree=tree), ())


def _check_scenario(tree: reading.MarkedTree, *, source: docs.Source) -> _Checked:
    """Parameters, templates, schema and references of one scenario, all in one pass."""
    declared, problems = substituting.declared_parameters(tree)
    written = tree
    if problems:
        declared = _usable_declarations(tree)
        written = _with_declarations(tree, declared)
    expanded = substituting.expand_with_placeholders(tree, declared=declared)
    problems.extend(expanded.problems)
    broken_templates = frozenset(problem.field for problem in expanded.problems)
    model, schema_problems = substituting.validate_scenario(
        expanded.tree, base_dir=source.path.parent
    )
    problems.extend(
        problem
        for problem in schema_problems
        if not any(_within(problem.field, field) for field in broken_templates)
    )
    if model is not None and not problems:
        loaded = docs.Loaded(source=source, model=model, tree=tree)
        references = linting.reference_problems(loaded)
        if not references:
            return _Checked(loaded, ())
        unsalvaged = Partial(document=loaded, fields={}, suppressed=frozenset())
        return _Checked(None, tuple(references), partial=unsalvaged)
    partial = _salvage(expanded.tree, written, source=source, unjudged=broken_templates)
    if partial is None:
        return _Checked(None, tuple(problems), blocked=(REFERENCES, LINT))
    problems.extend(partial.adjust(linting.reference_problems(partial.document)))
    return _Checked(None, tuple(problems), partial=partial)


def _usable_declarations(tree: reading.MarkedTree) -> dict[str, models.Parameter]:
    """The parameter declarations that validate; a broken one keeps its type if it can.

    Used only to keep checking after `declared_parameters` reported the broken ones: a
    declaration whose default or enum is wrong still declares a typed parameter, and one
    whose type is wrong stands in as a string, so its templates are not "unknown".
    """
    found, raw = tree.get(("spec", "parameters"))
    if not found or not isinstance(raw, dict):
        return {}
    usable: dict[str, models.Parameter] = {}
    for name, declaration in raw.items():
        candidates: list[reading.Data] = [declaration]
        if isinstance(declaration, dict):
            candidates.append({"type": declaration.get("type")})
        candidates.append({"type": "string"})
        for candidate in candidates:
            try:
                usable[name] = models.Parameter.model_validate(candidate, by_alias=True)
            except pydantic.ValidationError:
                continue
            break
    return usable


def _with_declarations(
    tree: reading.MarkedTree, declared: Mapping[str, models.Parameter]
) -> reading.MarkedTree:
    """`tree` whose `spec.parameters` are exactly `declared` (for later checks to expand)."""
    data = tree.data
    assert isinstance(data, dict)
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return tree
    table: dict[str, reading.Data] = {
        name: declaration.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        | {"type": declaration.type.value}
        for name, declaration in declared.items()
    }
    return tree.replace_data({**data, "spec": {**spec, "parameters": table}}, values=tree.values)


@dataclasses.dataclass
class _Item:
    """A list item while salvaging: where it was written, and its (salvaged) value."""

    origin: int
    value: _Node


_Node = dict[str, "_Node"] | list[_Item] | bool | int | float | str | None


def _wrap(data: reading.Data) -> _Node:
    if isinstance(data, dict):
        return {key: _wrap(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_Item(index, _wrap(value)) for index, value in enumerate(data)]
    return data


def _plain(node: _Node) -> reading.Data:
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item.value) for item in node]
    return node


def _origin(node: _Node, path: reading.TreePath) -> reading.TreePath | None:
    """`path` (salvaged indices) as written, or None when it is not in `node`."""
    written: list[str | int] = []
    for item in path:
        if isinstance(node, dict) and isinstance(item, str) and item in node:
            written.append(item)
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            written.append(node[item].origin)
            node = node[item].value
        else:
            return None
    return tuple(written)


def _delete_written(node: _Node, path: reading.TreePath) -> None:
    """Delete the element written at `path` (original indices), if it is still there."""
    for position, item in enumerate(path):
        last = position == len(path) - 1
        if isinstance(node, dict) and isinstance(item, str) and item in node:
            if last:
                del node[item]
                return
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int):
            match = next((entry for entry in node if entry.origin == item), None)
            if match is None:
                return
            if last:
                node.remove(match)
                return
            node = match.value
        else:
            return


def _written_paths(
    node: _Node, new: reading.TreePath = (), old: reading.TreePath = ()
) -> Iterable[tuple[reading.TreePath, reading.TreePath]]:
    yield new, old
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _written_paths(value, (*new, key), (*old, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _written_paths(item.value, (*new, index), (*old, item.origin))


def _salvage(
    expanded: reading.MarkedTree,
    written: reading.MarkedTree,
    *,
    source: docs.Source,
    unjudged: frozenset[str],
) -> Partial | None:
    """The scenario without the parts that fail validation, or None if nothing is left."""
    work, shadow = _wrap(expanded.data), _wrap(written.data)
    pruned: list[reading.TreePath] = []
    context = {"base_dir": source.path.parent}
    for _ in range(_SALVAGE_ROUNDS):
        plain = _plain(work)
        try:
            model = models.Scenario.model_validate(
                plain, by_alias=True, by_name=False, context=context
            )
        except pydantic.ValidationError as exc:
            current = expanded.replace_data(plain, values=expanded.values)
            doomed: set[reading.TreePath] = set()
            for kind, path in diagnostics.error_paths(exc, tree=current):
                target = path[:-1] if kind == "missing" else path
                origin = _origin(work, target)
                if len(target) < 2 or origin is None:
                    return None  # the envelope or the whole spec: nothing to salvage
                doomed.add(origin)
                if kind != "extra_forbidden":  # an unknown field changes nothing it sits in
                    pruned.append(origin)
            for origin in doomed:
                _delete_written(work, origin)
                if origin[:2] != ("spec", "parameters"):  # the shadow's are repaired already
                    _delete_written(shadow, origin)
            continue
        return _partial(
            model,
            work=work,
            shadow=shadow,
            written=written,
            pruned=pruned,
            unjudged=unjudged,
            source=source,
        )
    return None


def _partial(
    model: models.Scenario,
    *,
    work: _Node,
    shadow: _Node,
    written: reading.MarkedTree,
    pruned: Sequence[reading.TreePath],
    unjudged: frozenset[str],
    source: docs.Source,
) -> Partial:
    pairs = dict(_written_paths(work))
    pairs.update(_written_paths(shadow))
    old_to_new = {old: new for new, old in pairs.items()}
    tree = dataclasses.replace(
        written,
        data=_plain(shadow),
        values={new: written.values[old] for new, old in pairs.items() if old in written.values},
        keys={new: written.keys[old] for new, old in pairs.items() if old in written.keys},
        texts={new: written.texts[old] for new, old in pairs.items() if old in written.texts},
    )
    suppressed = {
        reading.render_path(old_to_new[path[:3]]) for path in pruned if path[:3] in old_to_new
    }
    suppressed.update(
        reading.render_path(old_to_new[path]) for path in pruned if path in old_to_new
    )
    written_fields = {
        reading.render_path(old): reading.render_path(new) for old, new in old_to_new.items()
    }
    suppressed.update(written_fields[field] for field in unjudged if field in written_fields)
    suppressed.update(_naming_pruned(model, written=written, pruned=pruned))
    fields = {reading.render_path(new): reading.render_path(old) for new, old in pairs.items()}
    document = docs.Loaded(source=source, model=model, tree=tree)
    return Partial(document=document, fields=fields, suppressed=frozenset(suppressed))


def _naming_pruned(
    model: models.Scenario, *, written: reading.MarkedTree, pruned: Sequence[reading.TreePath]
) -> set[str]:
    """Fields (salvaged) of steps and abort conditions naming a target or probe that was pruned."""
    spec = model.spec
    targets: set[str] = set()
    probes: set[str] = set()
    _, raw_probes = written.get(("spec", "steadyState"))
    for path in pruned:
        if path[:2] == ("spec", "targets"):
            _, raw = written.get(("spec", "targets"))
            everything = list(raw) if isinstance(raw, dict) else []
            targets.update(str(name) for name in (path[2:3] or everything))
        if path[:2] == ("spec", "steadyState") and isinstance(raw_probes, list):
            chosen = raw_probes
            if len(path) > 2 and isinstance(path[2], int):
                chosen = raw_probes[path[2] : path[2] + 1]
            probes.update(str(p["name"]) for p in chosen if isinstance(p, dict) and "name" in p)
    fields: set[str] = set()
    for section, steps in (("steps", spec.steps), ("rollback", spec.rollback)):
        for index, step in enumerate(steps):
            if step.target is not None and step.target in targets:
                fields.add(reading.render_path(("spec", section, index, "target")))
            if step.probe is not None and step.probe in probes:
                fields.add(reading.render_path(("spec", section, index, "probe")))
    for index, condition in enumerate(spec.guardrails.abort_when):
        if condition.probe is not None and condition.probe in probes:
            fields.add(reading.render_path(("spec", "guardrails", "abortWhen", index, "probe")))
    return fields


def _within(field: str, scope: str) -> bool:
    """`field` is `scope` or lies inside it (`spec.steps[1]` holds `spec.steps[1].target`)."""
    return field == scope or field.startswith((f"{scope}.", f"{scope}["))


def _remap(field: str, fields: Mapping[str, str]) -> str:
    """`field` with its longest salvaged prefix replaced by the prefix as written."""
    best = ""
    for prefix in fields:
        if len(prefix) > len(best) and _within(field, prefix):
            best = prefix
    return fields[best] + field[len(best) :] if best else field


def _envelope_problems(
    tree: reading.MarkedTree, data: dict[str, reading.Data]
) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    api_version = data.get("apiVersion")
    if "apiVersion" not in data:
        problems.append(
            _at(
                tree,
                ("apiVersion",),
                "missing required field 'apiVersion'",
                hint=f"add 'apiVersion: {models.API_VERSION}'",
            )
        )
    elif api_version != models.API_VERSION:
        problems.append(
            _at(
                tree,
                ("apiVersion",),
                f"unknown apiVersion '{api_version}'",
                hint=f"Stormdrill documents use 'apiVersion: {models.API_VERSION}'",
            )
        )
    kinds = [kind.value for kind in models.Kind]
    kind = data.get("kind")
    if "kind" not in data:
        problems.append(
            _at(
                tree, ("kind",), "missing required field 'kind'", hint=f"one of: {', '.join(kinds)}"
            )
        )
    elif kind not in kinds:
        hint = models.did_you_mean(str(kind), tuple(kinds))
        problems.append(
            _at(
                tree,
                ("kind",),
                f"unknown kind '{kind}'",
                hint=hint or f"one of: {', '.join(kinds)}",
            )
        )
    return problems


def _duplicates(loaded: Sequence[AnyLoaded]) -> list[errors.Problem]:
    first: dict[tuple[models.Kind, str], AnyLoaded] = {}
    problems: list[errors.Problem] = []
    for doc in loaded:
        key = (doc.kind, doc.name)
        if key in first:
            earlier = first[key].source
            problems.append(
                _at(
                    doc.tree,
                    ("metadata", "name"),
                    f"{doc.kind.value} '{doc.name}' is defined twice"
                    f" (first at {earlier.path}:{earlier.line})",
                    hint="give each document a unique name",
                )
            )
        else:
            first[key] = doc
    return problems


def _files(paths: Sequence[Path]) -> tuple[list[Path], list[errors.Problem]]:
    files: list[Path] = []
    problems: list[errors.Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                candidate
                for candidate in path.rglob("*")
                if candidate.suffix in YAML_SUFFIXES and candidate.is_file()
            )
            if not found:
                problems.append(_problem(str(path), "folder holds no .yaml or .yml files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(_problem(str(path), "no such file or folder"))
    unique = {file.resolve(): file for file in reversed(files)}
    return list(reversed(unique.values())), problems


def _load_one(path: Path, model: type[_M], kind: models.Kind) -> docs.Loaded[_M]:
    result = load_documents([path])
    result.raise_for_problems()
    matches = _of_kind(result.documents, model)
    if len(matches) != 1:
        raise errors.ScenarioInvalid(
            [
                _problem(
                    str(path),
                    f"expected exactly one {kind.value} document, found {len(matches)}",
                )
            ]
        )
    return matches[0]


def _at(
    tree: reading.MarkedTree, path: reading.TreePath, message: str, *, hint: str = ""
) -> errors.Problem:
    mark = tree.mark_for(path)
    return errors.Problem(
        file=tree.file,
        line=mark.line,
        column=mark.column,
        field=reading.render_path(path),
        message=message,
        hint=hint,
    )


def _problem(file: str, message: str, *, hint: str = "") -> errors.Problem:
    return errors.Problem(file=file, line=1, column=1, field="", message=message, hint=hint)
