"""Environment documents for service tests, built in memory (fresh each call)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scenarios import models


def environment(*, cmdb: Sequence[Path] | None = None, name: str = "test") -> models.Environment:
    """An Environment named `name`, with `cmdb.backstage` paths when `cmdb` is given."""
    spec: dict[str, object] = {}
    if cmdb is not None:
        spec["cmdb"] = {"backstage": [str(p) for p in cmdb]}
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": spec,
        }
    )
