"""Errors: the root of Stormdrill's error tree and the scenario language's own errors.

Every error Stormdrill raises on purpose derives from `StormdrillError`; anything
else escaping to the user is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class StormdrillError(Exception):
    """The root of every error Stormdrill raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, placed at file:line:column and a field path."""

    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        if self.severity == "warning":
            text = f"{text} [warning]"
        return f"{text} ({self.hint})" if self.hint else text


class ScenarioInvalid(StormdrillError):
    """One or more documents are invalid; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
