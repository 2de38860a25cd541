"""YAML documents with line marks: plain values plus where each value was written.

Invariants: a `Document` keeps, for every path into its data, the 1-based line and
column of the value (`marks`) and, for scalars, the text as written (`texts`), so
later stages can report `file:line:column: field: message` and read annotation
values exactly as typed. Duplicate mapping keys, merge keys and recursive aliases are
problems, never silently resolved. Nothing is read until `read_documents` is called.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import pydantic
import yaml
import yaml.constructor
import yaml.nodes

from scenarios import errors as scenario_errors

PathPart = str | int
FieldPath = tuple[PathPart, ...]

_MAX_NODES = 200_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


@dataclasses.dataclass(frozen=True)
class Document:
    """One YAML document of a file, with the marks of every value in it."""

    file: str
    index: int
    data: object
    marks: Mapping[FieldPath, Mark]
    texts: Mapping[FieldPath, str]

    @property
    def start(self) -> Mark:
        return self.marks.get((), Mark(1, 1))

    def mark(self, path: FieldPath) -> Mark:
        """The mark of `path`, or of its nearest written parent if it is absent."""
        for cut in range(len(path), -1, -1):
            mark = self.marks.get(path[:cut])
            if mark is not None:
                return mark
        return Mark(1, 1)

    def problem(
        self,
        path: FieldPath,
        message: str,
        *,
        hint: str = "",
        severity: str = "error",
    ) -> scenario_errors.Problem:
        """A problem placed at `path` in this document."""
        mark = self.mark(path)
        return scenario_errors.Problem(
            file=self.file,
            line=mark.line,
            column=mark.column,
            field=format_path(path),
            message=message,
            hint=hint,
            severity=severity,
        )

    def validation_problems(
        self, exc: pydantic.ValidationError, *, prefix: FieldPath = ()
    ) -> list[scenario_errors.Problem]:
        """Turn a pydantic error on the value at `prefix` into placed problems."""
        problems = []
        for error in exc.errors():
            path = prefix + tuple(p for p in error["loc"] if isinstance(p, str | int))
            message = str(error["msg"])
            hint = ""
            if error["type"] == "missing":
                message = "this field is required"
            elif error["type"] == "extra_forbidden":
                message = "unknown field"
                hint = "remove it or check its spelling"
            problems.append(self.problem(path, message, hint=hint))
        return problems


def format_path(path: FieldPath) -> str:
    """A field path as written in problems.

    `("metadata", "annotations", "stormdrill.dev/tier")` gives
    `metadata.annotations["stormdrill.dev/tier"]`; `("spec", "dependsOn", 1)` gives
    `spec.dependsOn[1]`.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def read_documents(
    path: Path, *, display: str | None = None
) -> tuple[list[Document], list[scenario_errors.Problem]]:
    """Read every document of a YAML file; `display` is the file name used in problems."""
    name = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = scenario_errors.Problem(
            file=name, line=1, column=1, field="", message=f"cannot read the file: {exc}"
        )
        return [], [problem]
    return parse_documents(text, file=name)


def parse_documents(
    text: str, *, file: str
) -> tuple[list[Document], list[scenario_errors.Problem]]:
    """Parse every document of a YAML text; empty documents are left out."""
    documents: list[Document] = []
    problems: list[scenario_errors.Problem] = []
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader)):
            if node is None:
                continue
            converter = _Converter(file)
            data = converter.convert(node, ())
            problems.extend(converter.problems)
            if data is None:
                continue
            documents.append(
                Document(
                    file=file,
                    index=index,
                    data=data,
                    marks=converter.marks,
                    texts=converter.texts,
                )
            )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = f"not valid YAML: {exc.problem or exc.context}"
        problems.append(
            scenario_errors.Problem(file=file, line=line, column=column, field="", message=message)
        )
    except yaml.YAMLError as exc:
        problems.append(
            scenario_errors.Problem(
                file=file, line=1, column=1, field="", message=f"not valid YAML: {exc}"
            )
        )
    return documents, problems


class _Converter:
    """Turns a composed node tree into plain values, recording marks and problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[FieldPath, Mark] = {}
        self.texts: dict[FieldPath, str] = {}
        self.problems: list[scenario_errors.Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def _problem(self, node: yaml.nodes.Node, path: FieldPath, message: str) -> None:
        mark = node.start_mark
        self.problems.append(
            scenario_errors.Problem(
                file=self.file,
                line=mark.line + 1,
                column=mark.column + 1,
                field=format_path(path),
                message=message,
            )
        )

    def convert(self, node: yaml.nodes.Node, path: FieldPath) -> object:
        self._count += 1
        if self._count > _MAX_NODES:
            if self._count == _MAX_NODES + 1:
                self._problem(node, path, f"the document has more than {_MAX_NODES} values")
            return None
        self.marks[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self._active:
            self._problem(node, path, "a YAML alias refers to itself")
            return None
        if isinstance(node, yaml.nodes.ScalarNode):
            self.texts[path] = str(node.value)
            try:
                return self._constructor.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError) as exc:
                self._problem(node, path, f"cannot read {node.value!r}: {exc}")
                return str(node.value)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.nodes.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.nodes.MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        self._problem(node, path, "unsupported YAML node")
        return None

    def _mapping(self, node: yaml.nodes.MappingNode, path: FieldPath) -> dict[str, object]:
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.nodes.ScalarNode):
                self._problem(key_node, path, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                self._problem(key_node, path, "YAML merge keys ('<<') are not supported")
                continue
            if key in first_line:
                self._problem(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first written on line {first_line[key]})",
                )
                continue
            first_line[key] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, (*path, key))
        return result
