"""AWS crash safety: SIGKILL a drill at seeded points; `stormdrill recover` restores AWS."""

from __future__ import annotations

import pathlib

import pytest

from sandbox import stack
from tests.crash_safety import campaign, driver, harness, scenarios

pytestmark = pytest.mark.slow

KILL_POINTS = 30


def test_sigkill_at_30_seeded_points_then_recover_restores_aws(
    tmp_path: pathlib.Path, crash_seed: int
) -> None:
    _, aws_file = scenarios.write(tmp_path)
    with stack.Sandbox(tmp_path / "sandbox") as world:
        drive = harness.Driver(tmp_path)
        try:
            before = harness.aws_world(world)
            run = campaign.Campaign(
                driver=drive,
                scenario=aws_file,
                env=world.info.environment,
                db=f"sqlite:///{tmp_path / 'journal.db'}",
                snapshot=lambda: harness.aws_world(world),
                workdir=tmp_path,
            )
            counts = run.calibrate()
            run.check(before, f"seed {crash_seed}, calibration run", "")
            groups = [
                *([k] for k in driver.JOURNAL_KINDS),
                campaign.state_kinds(counts),
                *([k] for k in driver.AWS_KINDS),
            ]
            points = campaign.points_for(
                counts, seed=crash_seed, salt=2, how_many=KILL_POINTS, groups=groups
            )
            run.run(points, before=before, seed=crash_seed)
        finally:
            drive.close()
    assert len(run.cases) == KILL_POINTS
    assert len(run.not_reached) <= KILL_POINTS // 10, run.not_reached
