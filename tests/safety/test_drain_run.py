"""A whole run over the sandbox: an unowned pod deleted by a drain is back after the rollback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import engine, journal, states
from sandbox import stack
from tests.engine_runs import support
from tests.safety import world

NODE = "node-us-east-1a-1"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path / "sandbox") as sandbox:
        support.settle(sandbox)
        yield sandbox


def _scenario_file(tmp_path: Path, **params: object) -> Path:
    doc = world.scenario(
        targets={
            "node": {
                "provider": "kubernetes",
                "kind": "node",
                "selector": {"names": [NODE]},
                "blastRadius": {"max": 1},
            }
        },
        steps=[
            {
                "name": "drain",
                "action": "kubernetes.nodes.drain",
                "target": "node",
                "with": {"timeout": "2m", **params},
            },
            {"name": "hold", "wait": "1m"},
        ],
    )
    path = tmp_path / "drain.yaml"
    path.write_text(
        yaml.safe_dump(doc.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    )
    return path


def test_a_run_deleting_an_unowned_pod_journals_it_and_the_rollback_recreates_it(
    shop: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    assert shop.store is not None
    world.add_bare_pod(shop.store, "scratch", namespace="shop", node=NODE)
    drill = support.bind(shop, str(_scenario_file(tmp_path, deleteUnownedPods=True)))

    outcome = support.make_engine(store, drill).run(drill)

    assert outcome.run.state is states.RunState.COMPLETED, outcome.run.reason
    entries = store.entries(outcome.run.id)
    pod_entries = [e for e in entries if e.target.kind == "pod"]
    assert [e.target.name for e in pod_entries] == ["scratch"]
    assert pod_entries[0].state.value == "reverted"
    manifest: Any = pod_entries[0].undo.data["manifest"]
    assert manifest["metadata"]["name"] == "scratch"
    assert "scratch" in world.pod_names(shop.store, "shop")


def test_a_run_that_would_lose_an_unowned_pod_is_refused_and_touches_nothing(
    shop: stack.Sandbox, store: journal.Journal, tmp_path: Path
) -> None:
    assert shop.store is not None and shop.kube is not None
    world.add_bare_pod(shop.store, "scratch", namespace="default", node=NODE)
    drill = support.bind(shop, str(_scenario_file(tmp_path)))
    writes = shop.kube.mutating_request_count

    outcome = support.make_engine(store, drill).run(drill)

    assert outcome.exit_code == engine.ExitCode.INVALID == 3
    assert "unowned-pods:" in outcome.run.reason and "pod default/scratch" in outcome.run.reason
    assert "namespace-opt-in:" in outcome.run.reason
    assert store.entries(outcome.run.id) == []
    assert shop.kube.mutating_request_count == writes
    assert "scratch" in world.pod_names(shop.store, "default")
