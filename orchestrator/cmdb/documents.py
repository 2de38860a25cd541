"""Catalog documents with line marks: plain values plus where each value was written.

Invariants: YAML is read only through `scenarios.reading` (the one bounded reader: core
schema, nesting and value budgets, control characters and duplicate keys reported at
their line and column); a `Document` keeps, for every path into its data, the 1-based
line and column of the value (`marks`) and, for scalars, the text as written (`texts`),
so later stages can report `file:line:column: field: message` and read annotation
values exactly as typed. A document with a YAML problem is left out, the file's other
documents are kept. Nothing is read until `read_documents` is called.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import pydantic

from scenarios import errors as scenario_errors
from scenarios import reading

PathPart = str | int
FieldPath = tuple[PathPart, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Mark = reading.Mark
"""A 1-based line and column (the reader's)."""


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


def read_documents(path: Path) -> tuple[list[Document], list[scenario_errors.Problem]]:
    """Read every document of a YAML file (an empty file holds none)."""
    return _documents(reading.read_file(path, allow_empty=True))


def parse_documents(
    text: str, *, file: str
) -> tuple[list[Document], list[scenario_errors.Problem]]:
    """Parse every document of a YAML text; empty documents are left out."""
    return _documents(reading.read_bytes(text.encode("utf-8"), file=file, allow_empty=True))


def _documents(
    result: reading.ReadResult,
) -> tuple[list[Document], list[scenario_errors.Problem]]:
    documents = [
        Document(
            file=tree.file,
            index=index,
            data=tree.data,
            marks=tree.values,
            texts=tree.texts,
        )
        for index, tree in enumerate(result.trees)
    ]
    return documents, list(result.problems)
