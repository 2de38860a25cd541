"""Factories for catalog documents: fresh YAML text for each test, written under tmp_path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

SAMPLE = Path(__file__).resolve().parents[2] / "sandbox" / "data"
SAMPLE_CATALOG = SAMPLE / "catalog-info.yaml"
SAMPLE_ONCALL = SAMPLE / "oncall.yaml"


def entity(
    kind: str,
    name: str,
    spec: Mapping[str, object],
    *,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """One Backstage entity document as YAML text."""
    metadata: dict[str, object] = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    doc = {"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
    return yaml.safe_dump(doc, sort_keys=False)


def component(
    name: str,
    *,
    owner: str = "group:team-a",
    depends_on: Sequence[str] = (),
    annotations: Mapping[str, str] | None = None,
    **spec: object,
) -> str:
    """A Component of type service owned by `owner`."""
    body: dict[str, object] = {"type": "service", "lifecycle": "production", "owner": owner}
    if depends_on:
        body["dependsOn"] = list(depends_on)
    body.update(spec)
    return entity("Component", name, body, annotations=annotations)


def group(name: str = "team-a", members: Sequence[str] = ()) -> str:
    return entity("Group", name, {"type": "team", "children": [], "members": list(members)})


def user(name: str, member_of: Sequence[str] = ()) -> str:
    return entity("User", name, {"memberOf": list(member_of)})


def write(folder: Path, name: str, *documents: str) -> Path:
    """Write documents as one multi-document file; returns its path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(documents), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, *, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in {path}")
