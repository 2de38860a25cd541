"""Kubernetes crash safety: SIGKILL a drill at seeded points; `stormdrill recover` restores all."""

from __future__ import annotations

import pathlib

import pytest

from sandbox import stack
from tests.crash_safety import campaign, driver, harness, scenarios

pytestmark = pytest.mark.slow

KILL_POINTS = 50


def test_sigkill_at_50_seeded_points_then_recover_restores_the_cluster(
    tmp_path: pathlib.Path, crash_seed: int
) -> None:
    kube_file, _ = scenarios.write(tmp_path)
    killer = harness.RequestKiller()
    with stack.Sandbox(tmp_path / "sandbox", controller_interval_s=0.05) as world:
        assert world.kube is not None
        world.kube.faults.on_request = killer
        drive = harness.Driver(tmp_path)
        try:
            before = harness.kube_world(world)
            run = campaign.Campaign(
                driver=drive,
                scenario=kube_file,
                env=world.info.environment,
                db=f"sqlite:///{tmp_path / 'journal.db'}",
                snapshot=lambda: harness.kube_world(world),
                workdir=tmp_path,
                killer=killer,
            )
            counts = run.calibrate()
            run.check(before, f"seed {crash_seed}, calibration run", "")
            groups = [
                *([k] for k in driver.JOURNAL_KINDS),
                campaign.state_kinds(counts),
                *([k] for k in harness.REQUEST_KINDS),
            ]
            points = campaign.points_for(
                counts, seed=crash_seed, salt=1, how_many=KILL_POINTS, groups=groups
            )
            run.run(points, before=before, seed=crash_seed)
        finally:
            drive.close()
    assert len(run.cases) == KILL_POINTS
    assert len(run.not_reached) <= KILL_POINTS // 10, run.not_reached
