"""Kubernetes crash safety: SIGKILL a drill at seeded points; `stormdrill recover` restores all.

On SQLite and on PostgreSQL (a schema of its own per test). Every case checks that the kill
landed at its point (kill record and journal position); the results line says how many of the
points were reached. The default run does a small seeded set on PostgreSQL plus two drops of
the database connection mid-rollback; the full sets carry the `slow` marker
(the PostgreSQL full set is in test_kubernetes_crash_postgres.py, so that another worker runs it).
"""

from __future__ import annotations

import pathlib

import pytest

from tests.crash_safety import campaign

KILL_POINTS = 50
POSTGRES_KILL_POINTS = 8


@pytest.mark.slow
@pytest.mark.timeout(campaign.FULL_SET_TIMEOUT_S)
def test_sigkill_at_50_seeded_points_then_recover_restores_the_cluster(
    tmp_path: pathlib.Path, crash_seed: int, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    run = campaign.kubernetes(tmp_path, db=sqlite_url, seed=crash_seed, how_many=KILL_POINTS)

    campaign.report(request, run, "kubernetes on sqlite")


@pytest.mark.postgres
@pytest.mark.timeout(campaign.DEFAULT_SET_TIMEOUT_S)
def test_sigkill_at_8_seeded_points_and_a_dropped_connection_mid_rollback_on_postgres_heal(
    tmp_path: pathlib.Path, crash_seed: int, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    run = campaign.kubernetes(
        tmp_path,
        db=postgres_url,
        seed=crash_seed,
        how_many=POSTGRES_KILL_POINTS,
        connection_kills=True,
    )

    assert any(p.startswith("intent:") for p in run.cases), run.cases  # commit, then die
    assert len(run.connection_kills) == 2, run.connection_kills
    campaign.report(request, run, "kubernetes on postgres (default set)")
