"""Fixtures for the secrets tests: a private, settled sandbox per test that mutates it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import stack
from tests.engine_runs import support


@pytest.fixture
def world(tmp_path: Path) -> Iterator[stack.Sandbox]:
    """A private, settled sandbox (Kubernetes, moto, health endpoints)."""
    with stack.Sandbox(tmp_path / "sandbox") as sandbox:
        support.settle(sandbox)
        yield sandbox
