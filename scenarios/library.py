"""Library: the scenarios bundled with Stormdrill (`scenarios/library/*.yaml`, package data).

Invariants: the library is read-only package data located through importlib.resources;
each file holds one Scenario named like its file (`az-failure.yaml` → `az-failure`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from scenarios import errors, models


def folder() -> Path:
    """The folder holding the bundled scenario files."""
    resource = importlib.resources.files("scenarios").joinpath("library")
    if not isinstance(resource, Path):
        raise errors.StormdrillError(
            "the bundled scenario library is not on the file system (zipped install?);"
            " install Stormdrill unpacked"
        )
    return resource


def bundled_paths() -> list[Path]:
    """Every bundled scenario file, sorted by name."""
    return sorted(path for path in folder().glob("*.yaml") if path.is_file())


def names() -> list[str]:
    """The names of the bundled scenarios."""
    return [path.stem for path in bundled_paths()]


def find(name: str) -> Path:
    """The bundled scenario file named `name`; raise `ScenarioInvalid` naming close matches."""
    path = folder() / f"{name}.yaml"
    if path.is_file():
        return path
    known = names()
    hint = models.did_you_mean(name, tuple(known)) or f"bundled: {', '.join(known)}"
    raise errors.ScenarioInvalid(
        [
            errors.Problem(
                file=str(folder()),
                line=1,
                column=1,
                field="",
                message=f"no bundled scenario named '{name}'",
                hint=hint,
            )
        ]
    )


def is_bundled(path: Path) -> bool:
    """Whether `path` is one of the bundled scenario files."""
    try:
        return path.resolve().parent == folder().resolve()
    except errors.StormdrillError:
        return False
