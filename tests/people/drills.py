"""Building people-only drills over the sample CMDB (no cluster, no cloud) and running them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import engine, journal, mutations, planning
from orchestrator.cmdb import backstage
from orchestrator.providers import builtin
from sandbox import stack
from scenarios import models


def environment() -> models.Environment:
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "test"},
            "spec": {"timeScale": 0.01, "cmdb": {"backstage": [str(stack.catalog_path().parent)]}},
        }
    )


def scenario(
    *,
    absent: str = "user:default/alice",
    assignee: str = "group:default/team-payments",
    role: str = "on-call",
    on_timeout: str = "abort",
) -> models.Scenario:
    raw: dict[str, Any] = {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Scenario",
        "metadata": {"name": "absence"},
        "spec": {
            "description": "Someone is away; the team covers.",
            "failureMode": "key-person",
            "hypothesis": "The on-call covers.",
            "targets": {
                "absent": {
                    "provider": "people",
                    "kind": "person",
                    "selector": {"refs": [absent]},
                    "blastRadius": {"max": 1},
                }
            },
            "guardrails": {"environments": ["test"], "maxDuration": "1h"},
            "steps": [
                {"name": "mark", "action": "people.mark-unavailable", "target": "absent"},
                {
                    "name": "task",
                    "manual": {
                        "instructions": "Restore payments with the runbook.",
                        "assignee": assignee,
                        "role": role,
                        "timeout": "10s",
                    },
                    "onTimeout": on_timeout,
                },
            ],
            "objectives": {"rto": "30m"},
        },
    }
    return models.Scenario.model_validate(raw)


def drill_input(scenario_: models.Scenario) -> planning.DrillInput:
    return planning.DrillInput(
        scenario=scenario_,
        scenario_source="test",
        environment=environment(),
        environment_source="test",
        parameters={},
    )


def make_engine(store: journal.Journal, *, auto_ack_s: float | None = None) -> engine.Engine:
    return engine.Engine(
        store=store,
        reg=builtin.registry_with_builtins(),
        config=engine.EngineConfig(auto_ack_s=auto_ack_s, stability_window_s=0.1),
        catalog=backstage.load_catalog([stack.catalog_path().parent]),
    )


def manual_data(
    store: journal.Journal, outcome: engine.RunOutcome
) -> Mapping[str, mutations.JsonValue]:
    [event] = store.events(outcome.run.id, kind="manual")
    return event.data
