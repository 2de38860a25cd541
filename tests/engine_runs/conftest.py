"""Fixtures for end-to-end engine runs: a whole sandbox (per test or per module) and a journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import journal
from sandbox import stack
from tests.engine_runs import support


@pytest.fixture
def world(tmp_path: Path) -> Iterator[stack.Sandbox]:
    """A private, settled sandbox (Kubernetes, moto, health endpoints) for a test that mutates."""
    with stack.Sandbox(tmp_path / "sandbox") as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    """One settled sandbox for a module whose tests never change it (plans, refusals)."""
    with stack.Sandbox(tmp_path_factory.mktemp("shared-sandbox")) as sandbox:
        support.settle(sandbox)
        yield sandbox


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite journal URL in the test's tmp dir."""
    return f"sqlite:///{tmp_path / 'stormdrill.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[journal.Journal]:
    """An open journal on that SQLite file."""
    with journal.open_store(db_url) as opened:
        yield opened


WALL_TIMES = pytest.StashKey[dict[str, float]]()


@pytest.fixture
def wall_times(request: pytest.FixtureRequest) -> dict[str, float]:
    """Record `name → seconds`; the terminal summary lists them (no assertion is made on time)."""
    return request.config.stash.setdefault(WALL_TIMES, {})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    times = config.stash.get(WALL_TIMES, {})
    if times:
        terminalreporter.section("drill wall times (tests/engine_runs)")
        for name, seconds in sorted(times.items()):
            terminalreporter.write_line(f"{name}: {seconds:.1f}s")
