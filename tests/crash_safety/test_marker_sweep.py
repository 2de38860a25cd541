"""Journal lost: kill mid-drill, delete the store; `stormdrill recover --env` heals from markers.

Kubernetes faults carry `stormdrill.dev/*` annotations (and a label on created policies), AWS
faults `stormdrill:*` tags; with the journal gone, the sweep is the only thing that knows.
The first case of each provider runs the CLI as a brand-new interpreter, the rest as a fork
of the pre-imported driver.
"""

from __future__ import annotations

import pathlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import stack
from tests.crash_safety import harness, scenarios

pytestmark = pytest.mark.slow

KUBE_MUTATIONS = 8  # 2 cordons, 2 taints, 1 scale, 1 policy, 2 bindings
AWS_MUTATIONS = 6  # 1 isolation, 2 instances, 1 group, 1 security group, 1 user


def _delete_store(path: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _heal_without_journal(
    *,
    tmp_path: pathlib.Path,
    world: stack.Sandbox,
    scenario: pathlib.Path,
    points: list[str],
    snapshot: Callable[[], Any],
    seed: int,
) -> None:
    drive = harness.Driver(tmp_path)
    try:
        before = snapshot()
        for i, point in enumerate(points):
            what = f"seed {seed}, kill point {point}, journal deleted"
            store = tmp_path / f"journal-{i}.db"
            db = f"sqlite:///{store}"
            env = world.info.environment
            ended = drive.drill(scenario=scenario, env=env, db=db, kill=point)
            assert ended.killed, f"{what}: the drill was not killed:\n{ended.output()}"
            left = list(harness.diff(before, snapshot()))
            assert left, f"{what}: the kill left no fault; the point is too early to prove much"
            _delete_store(store)
            code: int | None
            if i == 0:
                done = harness.cli_subprocess(["recover", "--env", str(env)], db=db)
                code, output = done.returncode, done.stdout + done.stderr
            else:
                forked = drive.cli(["recover", "--env", str(env)], db=db)
                code, output = forked.code, forked.output()
            assert code == 0, f"{what}: recover failed:\n{output}"
            assert "healed" in output, output
            changes = list(harness.diff(before, snapshot()))
            assert not changes, (
                f"{what}: faults left after the sweep:\n  " + "\n  ".join(changes) + f"\n{output}"
            )
    finally:
        drive.close()


def test_kubernetes_faults_heal_from_annotations_when_the_journal_is_deleted(
    tmp_path: pathlib.Path, crash_seed: int
) -> None:
    kube_file, _ = scenarios.write(tmp_path)
    rng = random.Random(crash_seed * 7919 + 3)
    points = [
        f"intent:{rng.randint(2, KUBE_MUTATIONS)}",
        "state:rolling_back:1",
    ]
    with stack.Sandbox(tmp_path / "sandbox", controller_interval_s=0.05) as world:
        _heal_without_journal(
            tmp_path=tmp_path,
            world=world,
            scenario=kube_file,
            points=points,
            snapshot=lambda: harness.kube_world(world),
            seed=crash_seed,
        )


def test_aws_faults_heal_from_tags_when_the_journal_is_deleted(
    tmp_path: pathlib.Path, crash_seed: int
) -> None:
    _, aws_file = scenarios.write(tmp_path)
    rng = random.Random(crash_seed * 7919 + 4)
    points = [
        f"intent:{rng.randint(2, AWS_MUTATIONS)}",
        "state:rolling_back:1",
    ]
    with stack.Sandbox(tmp_path / "sandbox", controller_interval_s=0.05) as world:
        _heal_without_journal(
            tmp_path=tmp_path,
            world=world,
            scenario=aws_file,
            points=points,
            snapshot=lambda: harness.aws_world(world),
            seed=crash_seed,
        )
