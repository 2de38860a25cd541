"""A people-only drill on disk (Scenario and Environment files over the sample CMDB).

The service binds real files, so these tests write them: no cluster or cloud is needed,
the drill marks a person unavailable and reverts it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drills import settings
from orchestrator import journal, mutations, records, states
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
      default: {token_default}
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: [user:default/alice]
      blastRadius:
        max: 1
  guardrails:
    environments: [test]
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
  name: test
spec:
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
"""

TOKEN_DEFAULT = "default-token-value"


@dataclasses.dataclass(frozen=True)
class Files:
    scenario: Path
    environment: Path
    config: settings.Settings


def write(tmp_path: Path, *, database_url: str | None = None) -> Files:
    """The drill's files under `tmp_path`, and settings whose store and reports live there."""
    scenario = tmp_path / "absence.yaml"
    scenario.write_text(SCENARIO.format(token_default=TOKEN_DEFAULT), encoding="utf-8")
    environment = tmp_path / "test.environment.yaml"
    environment.write_text(
        ENVIRONMENT.format(catalog=stack.catalog_path().parent), encoding="utf-8"
    )
    config = settings.Settings(
        data_dir=tmp_path / "data",
        database_url=database_url or f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )
    return Files(scenario=scenario, environment=environment, config=config)


LONG_AGO = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def crashed_run(store: journal.Journal, run_id: str, *, environment_source: str) -> states.RunId:
    """An INJECTING run whose orchestrator (on another host) went silent long ago, with one
    applied mutation (a person marked unavailable) to undo."""
    rid = states.RunId(run_id)
    run = states.new_run(
        id=rid,
        scenario="absence",
        environment="test",
        environment_source=environment_source,
        owner=states.Owner(host="gone-host", pid=1, token="t"),
        at=LONG_AGO,
        record=records.RunRecord(time_scale=0.01),
    )
    store.create_run(run)
    entry = store.record_intent(
        rid,
        mutations.PlannedMutation(
            step="mark",
            target=mutations.TargetRef(provider="people", kind="person", name="user:default/alice"),
            action="people.mark-unavailable",
            params={"reason": "drill"},
            pre_state={"available": True},
            undo=mutations.UndoToken(action="people.mark-unavailable", data={}),
        ),
    )
    store.mark_applied(entry.seq)
    injecting = dataclasses.replace(
        run, state=states.RunState.INJECTING, updated_at=LONG_AGO + timedelta(seconds=1)
    )
    store.save_run(injecting, expected_state=states.RunState.PENDING)
    return rid
