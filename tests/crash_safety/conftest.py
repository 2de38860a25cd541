"""Crash-safety fixtures: the session's seed ($STORMDRILL_CRASH_SEED or fresh) and each
campaign's results line (how many kill points were reached), shown at the end."""

from __future__ import annotations

import pytest

from tests.crash_safety import harness

_SEED = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SEED] = harness.seed_from_env()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, line in getattr(report, "user_properties", ()):
                if key == "crash-safety" and getattr(report, "when", "") == "call":
                    terminalreporter.write_line(f"crash-safety: {line}")
    seed = config.stash.get(_SEED, None)
    if seed is not None:
        terminalreporter.write_line(
            f"crash-safety seed: {seed} (replay with {harness.SEED_ENV}={seed})"
        )


@pytest.fixture
def crash_seed(request: pytest.FixtureRequest) -> int:
    """The seed every kill-point choice of this session derives from."""
    return request.config.stash[_SEED]
