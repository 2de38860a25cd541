"""AWS crash safety on PostgreSQL, the full seeded set (`slow`): SIGKILL, then recover.

In a file of its own so that `--dist loadfile` gives it a worker of its own.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.crash_safety import campaign
from tests.crash_safety.test_aws_crash import KILL_POINTS


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(campaign.FULL_SET_TIMEOUT_S)
def test_sigkill_at_30_seeded_points_on_postgres_then_recover_restores_aws(
    tmp_path: pathlib.Path, crash_seed: int, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    run = campaign.aws(tmp_path, db=postgres_url, seed=crash_seed, how_many=KILL_POINTS)

    campaign.report(request, run, "aws on postgres")
