"""A people-only drill into a protected environment (files on disk, the sample CMDB).

The two-person rule needs a run that really plans and really runs: this drill marks a
person unavailable and reverts it, so no cluster or cloud is needed. The `prod`
Environment is protected and needs `required` distinct approvers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drills import binding
from drills import settings as settings_mod
from drills.service import runs
from orchestrator import engine, journal, planning, states
from sandbox import stack

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: absence
spec:
  description: Someone is away; the team covers.
  failureMode: key-person
  hypothesis: The team covers.
  parameters:
    why:
      type: string
      default: drill
    token:
      type: string
      secret: true
      default: s3cret-token-value
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: [{person}]
      blastRadius:
        max: 1
  guardrails:
    environments: [prod, test]
    maxDuration: 1h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
  objectives:
    rto: 30m
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: {name}
spec:
  protected: {protected}
  approvals:
    required: {required}
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
"""

SECRET = "s3cret-token-value"


@dataclasses.dataclass(frozen=True)
class World:
    scenario: Path
    environment: Path
    config: settings_mod.Settings

    def request(self, *sets: str) -> runs.DrillRequest:
        return runs.DrillRequest(
            target=str(self.scenario), environment=str(self.environment), sets=sets
        )

    def set_person(self, ref: str) -> None:
        """Point the scenario at another person (its plan changes)."""
        self.scenario.write_text(SCENARIO.replace("{person}", ref), encoding="utf-8")


def write(
    tmp_path: Path, *, required: int = 1, protected: bool = True, name: str = "prod"
) -> World:
    """The drill's files under `tmp_path`, and settings whose store lives there."""
    scenario = tmp_path / "absence.yaml"
    scenario.write_text(SCENARIO.replace("{person}", "user:default/alice"), encoding="utf-8")
    environment = tmp_path / f"{name}.environment.yaml"
    environment.write_text(
        ENVIRONMENT.format(
            name=name,
            protected="true" if protected else "false",
            required=required,
            catalog=stack.catalog_path().parent,
        ),
        encoding="utf-8",
    )
    config = settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )
    return World(scenario=scenario, environment=environment, config=config)


def plan_of(world: World, store: journal.Journal) -> planning.Plan:
    """A fresh plan of the drill (what a driver does just before the start)."""
    prepared = runs.prepare(world.config, world.request())
    return runs.plan(
        world.config, store, binding.make_registry(), prepared, touched=runs.Touches(None, None)
    ).plan


def submit(world: World, store: journal.Journal, *, by: str) -> tuple[states.Run, planning.Plan]:
    """Submit the drill as `by` (PENDING) and return the run with the plan it was shown."""
    prepared = runs.prepare(world.config, world.request())
    plan = plan_of(world, store)
    run = runs.submit(
        world.config,
        store,
        binding.make_registry(),
        prepared,
        trigger=engine.Trigger(kind=engine.TriggerKind.API, principal=by),
    )
    return run, plan
