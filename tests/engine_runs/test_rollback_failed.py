"""A revert that fails for good ends ROLLBACK_FAILED (exit 4), leftovers named: never a success."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pydantic

from drills import binding
from orchestrator import engine, errors, journal, mutations, registry, states
from sandbox import stack
from tests.engine_runs import support


class _NoParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class StubbornAction(registry.Action[_NoParams]):
    """Changes nothing; its undo is refused for good (as a provider's permanent error)."""

    name: ClassVar[str] = "test.stubborn"
    params_model: ClassVar[type[pydantic.BaseModel]] = _NoParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({"node"})
    description: ClassVar[str] = "A test action whose revert always fails permanently."

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: _NoParams,
    ) -> list[mutations.PlannedMutation]:
        return [
            mutations.PlannedMutation(
                step="",
                target=ref,
                action=self.name,
                params={},
                pre_state={},
                undo=mutations.UndoToken(action=self.name, data={"node": ref.name}),
            )
            for ref in targets
        ]

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        raise errors.ProviderPermanent(f"node {undo.data['node']}: the undo API refused (403)")


def _stubborn_first(doc: dict[str, Any]) -> None:
    steps = doc["spec"]["steps"]
    stubborn = {"name": "stubborn-change", "action": "test.stubborn", "target": "zone-nodes"}
    doc["spec"]["steps"] = [steps[0], stubborn, *steps[1:]]
    doc["spec"]["parameters"]["outage"]["default"] = "30s"


def test_a_permanently_failing_revert_ends_rollback_failed_with_exit_4_and_the_leftovers(
    world: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    path = support.scenario_variant(
        "az-power-loss-kubernetes", tmp_path / "stubborn.yaml", _stubborn_first
    )
    drill = support.bind(world, str(path))
    reg = binding.make_registry()
    reg.register(StubbornAction)

    outcome = support.make_engine(store, drill, reg=reg).run(drill)

    assert outcome.run.state is states.RunState.ROLLBACK_FAILED
    assert outcome.exit_code == engine.ExitCode.ROLLBACK_FAILED == 4
    assert outcome.run.verdict is None
    assert sorted(entry.target.name for entry, _ in outcome.leftovers) == [
        "node-us-east-1a-1",
        "node-us-east-1a-2",
    ]
    assert all("the undo API refused (403)" in error for _, error in outcome.leftovers)
    assert "faults may remain" in outcome.run.reason
    record = store.get_run(outcome.run.id).record
    leftovers = record.get("leftovers")
    assert isinstance(leftovers, list) and len(leftovers) == 2
    states_by_step = {(e.step, e.state) for e in store.entries(outcome.run.id)}
    assert states_by_step == {
        ("stubborn-change", mutations.EntryState.REVERT_FAILED),
        ("zone-loses-power", mutations.EntryState.REVERTED),
    }
    assert all(taints == [] for taints in support.node_taints(world).values())
    assert engine.exit_code(store.get_run(outcome.run.id)) == 4
