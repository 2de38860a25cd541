"""Loading: files and folders of YAML into validated Scenario, Drill and Environment documents.

Invariants: loading never raises for bad input — `load_documents` returns every problem it
found (each naming file:line:column and the field as written) next to the documents that
are valid; the `load_scenario`/`load_drill`/`load_environment` conveniences raise
`ScenarioInvalid` with those same problems. A document with any problem is left out whole;
other documents of the same file still load. Scenarios are checked with every parameter at
its default (or a typed placeholder), so template mistakes surface at load time too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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

AnyLoaded = (
    docs.Loaded[models.Scenario] | docs.Loaded[models.Drill] | docs.Loaded[models.Environment]
)
_M = TypeVar("_M", models.Scenario, models.Drill, models.Environment)


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """Valid documents (in file order) and every problem found while loading."""

    documents: tuple[AnyLoaded, ...]
    problems: tuple[errors.Problem, ...]

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
    for file in files:
        bundled = library.is_bundled(file)
        read = reading.read_file(file)
        problems.extend(read.problems)
        for index, tree in enumerate(read.trees):
            source = docs.Source(path=file, index=index, line=tree.start.line, bundled=bundled)
            document, found = validate_tree(tree, source=source)
            problems.extend(found)
            if document is not None:
                loaded.append(document)
    problems.extend(_duplicates(loaded))
    ordered = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field))
    return LoadResult(tuple(loaded), tuple(ordered))


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
    data = tree.data
    if not isinstance(data, dict):
        return None, [
            _at(
                tree,
                (),
                "a document must be a mapping with apiVersion, kind, metadata and spec",
            )
        ]
    problems = _envelope_problems(tree, data)
    if problems:
        return None, problems
    kind = models.Kind(str(data["kind"]))
    if kind is models.Kind.SCENARIO:
        return _validate_scenario(tree, source=source)
    model_type = models.MODELS[kind]
    try:
        model = model_type.model_validate(
            data, by_alias=True, by_name=False, context={"base_dir": source.path.parent}
        )
    except pydantic.ValidationError as exc:
        return None, diagnostics.from_validation(exc, tree=tree, model=model_type)
    if isinstance(model, models.Drill):
        return docs.Loaded(source=source, model=model, tree=tree), []
    assert isinstance(model, models.Environment)
    return docs.Loaded(source=source, model=model, tree=tree), []


def _validate_scenario(
    tree: reading.MarkedTree, *, source: docs.Source
) -> tuple[AnyLoaded | None, list[errors.Problem]]:
    declared, problems = substituting.declared_parameters(tree)
    if problems:
        return None, problems
    expanded = substituting.expand_with_placeholders(tree, declared=declared)
    if expanded.problems:
        return None, list(expanded.problems)
    model, problems = substituting.validate_scenario(expanded.tree, base_dir=source.path.parent)
    if model is None:
        return None, problems
    loaded = docs.Loaded(source=source, model=model, tree=tree)
    problems = linting.reference_problems(loaded)
    if problems:
        return None, problems
    return loaded, []


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
