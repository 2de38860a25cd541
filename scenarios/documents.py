"""Documents: a validated model together with where it came from and its marked YAML tree.

Invariants: a `Loaded` document always passed model validation; its `tree` is the YAML as
written (templates unexpanded), so later checks (substitution, lint) can still place
every problem at a file, line and column.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Generic, TypeVar

from scenarios import models, reading

M = TypeVar("M", models.Scenario, models.Drill, models.Environment, covariant=True)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a document was read: file, position within a multi-document file, first line."""

    path: Path
    index: int
    line: int
    bundled: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated document, its source and its marked tree.

    For a Scenario, `model` is the scenario with every parameter at its default, or a
    typed placeholder when it has none (a string stands in as its lowercased name);
    bind real values with `substituting.render`.
    """

    source: Source
    model: M
    tree: reading.MarkedTree

    @property
    def name(self) -> str:
        return self.model.metadata.name

    @property
    def kind(self) -> models.Kind:
        return models.Kind(self.model.kind)

    @property
    def folder(self) -> Path:
        """The folder relative paths in this document resolve against."""
        return self.source.path.parent
