"""A revert that fails for good ends ROLLBACK_FAILED (exit 4), leftovers named: never a success."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest
from typer import testing

from drills import binding, cli
from drills.commands import running
from orchestrator import engine, errors, journal, mutations, planning, registry, rollback, states
from sandbox import aws, stack
from sandbox.kubernetes import resources
from tests.engine_runs import refusals, support


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
    assert record.leftovers is not None and len(record.leftovers) == 2
    states_by_step = {(e.step, e.state) for e in store.entries(outcome.run.id)}
    assert states_by_step == {
        ("stubborn-change", mutations.EntryState.REVERT_FAILED),
        ("zone-loses-power", mutations.EntryState.REVERTED),
    }
    assert all(taints == [] for taints in support.node_taints(world).values())
    assert engine.exit_code(store.get_run(outcome.run.id)) == 4


# -- reverts refused over the wire: 403, an object replaced, an AWS permission removed ------

TAINT_KEY = "stormdrill.dev/zone-outage"
ZONE_NODES = ["node-us-east-1a-1", "node-us-east-1a-2"]


def _when_rolling_back(action: Callable[[], None]) -> engine.Listener:
    """A listener that calls `action` as the run enters ROLLING_BACK (before any revert)."""

    def listen(kind: str, _message: str, data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == "state" and data.get("state") == states.RunState.ROLLING_BACK.value:
            action()

    return listen


def _short_outage(doc: dict[str, Any]) -> None:
    doc["spec"]["parameters"]["outage"]["default"] = "30s"


def _taint_drill(world: stack.Sandbox, tmp_path: Path) -> planning.DrillInput:
    path = support.scenario_variant(
        "az-power-loss-kubernetes", tmp_path / "power-loss.yaml", _short_outage
    )
    return support.bind(world, str(path))


def _our_taints(world: stack.Sandbox) -> dict[str, list[str]]:
    return {
        node: [t["key"] for t in taints if t.get("key") == TAINT_KEY]
        for node, taints in support.node_taints(world).items()
        if node in ZONE_NODES
    }


def _cli(db_url: str, *args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env=support.cli_env(db_url))


def test_a_revert_refused_with_403_ends_rollback_failed_is_printed_and_recover_heals_it_later(
    world: stack.Sandbox,
    store: journal.Journal,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert world.kube is not None
    drill = _taint_drill(world, tmp_path)
    refusal = refusals.KubeRefusal(method="PATCH", path_prefix="/api/v1/nodes")
    world.kube.faults.on_request = refusal

    def arm() -> None:
        refusal.armed = True

    try:
        outcome = support.make_engine(store, drill).run(drill, listener=_when_rolling_back(arm))
        running.summarise(outcome, store)

        assert outcome.run.state is states.RunState.ROLLBACK_FAILED
        assert outcome.exit_code == engine.ExitCode.ROLLBACK_FAILED == 4
        assert refusal.refused >= 2
        assert sorted(entry.target.name for entry, _ in outcome.leftovers) == ZONE_NODES
        assert all("Forbidden" in error for _, error in outcome.leftovers)
        assert _our_taints(world) == {node: [TAINT_KEY] for node in ZONE_NODES}  # still there
        printed = capsys.readouterr().err
        for node in ZONE_NODES:
            line = next(x for x in printed.splitlines() if node in x)
            assert line.startswith("LEFTOVER: #")
            assert "kubernetes.nodes.taint" in line and "effect=NoExecute" in line
            assert f"key={TAINT_KEY}" in line and "[cluster-scoped]" in line
            assert "Forbidden" in line
        assert f"stormdrill recover --run {outcome.run.id}" in printed
        saved = store.get_run(outcome.run.id)
        recorded = saved.record.leftovers
        assert recorded is not None and len(recorded) == 2
        assert all(item.kind == "node" and item.namespace is None for item in recorded)
        (hook,) = store.events(outcome.run.id, kind=rollback.ROLLBACK_FAILED_EVENT)
        hooked = hook.data.get("leftovers")
        assert isinstance(hook.data.get("by"), str)
        assert isinstance(hooked, list) and len(hooked) == 2
        assert {e.state for e in store.entries(outcome.run.id)} == {
            mutations.EntryState.REVERT_FAILED
        }

        still = _cli(db_url, "recover", "--run", outcome.run.id)
        assert still.exit_code == 4, still.output
        assert sum("LEFTOVER:" in x and "Forbidden" in x for x in still.stderr.splitlines()) == 2
        assert len(store.events(outcome.run.id, kind=rollback.ROLLBACK_FAILED_EVENT)) == 2
    finally:
        refusal.armed = False
        world.kube.faults.on_request = None

    healed = _cli(db_url, "recover", "--run", outcome.run.id)

    assert healed.exit_code == 0, healed.output
    assert _our_taints(world) == {node: [] for node in ZONE_NODES}
    assert support.kube_markers(world) == []
    final = store.get_run(outcome.run.id)
    assert final.state is states.RunState.COMPLETED
    assert final.record.leftovers == ()
    assert {e.state for e in store.entries(outcome.run.id)} == {mutations.EntryState.REVERTED}


def test_an_object_deleted_and_recreated_mid_drill_is_a_leftover_for_a_person_never_clobbered(
    world: stack.Sandbox, store: journal.Journal, db_url: str, tmp_path: Path
) -> None:
    assert world.store is not None
    kube = world.store
    drill = _taint_drill(world, tmp_path)
    replaced = ZONE_NODES[0]
    new_uid: list[str] = []

    def delete_and_recreate() -> None:
        # Someone saves the node's manifest, deletes the node and applies the manifest again:
        # the new incarnation carries our taint and markers, but it is not ours any more.
        (old,) = [
            n for n in support.objects(world, resources.NODES) if n["metadata"]["name"] == replaced
        ]
        kube.delete(resource=resources.NODES, namespace=None, name=replaced)
        manifest = copy.deepcopy(old)
        for field in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
            manifest["metadata"].pop(field, None)
        created: dict[str, Any] = dict(kube.create(resource=resources.NODES, obj=manifest))
        new_uid.append(str(created["metadata"]["uid"]))

    outcome = support.make_engine(store, drill).run(
        drill, listener=_when_rolling_back(delete_and_recreate)
    )

    assert outcome.run.state is states.RunState.ROLLBACK_FAILED
    assert outcome.exit_code == 4
    ((entry, error),) = outcome.leftovers
    assert entry.target.name == replaced
    assert "deleted and recreated by someone else" in error and new_uid[0] in error
    assert "A person must check it" in error
    assert _our_taints(world) == {replaced: [TAINT_KEY], ZONE_NODES[1]: []}
    (node,) = [
        n for n in support.objects(world, resources.NODES) if n["metadata"]["name"] == replaced
    ]
    assert node["metadata"]["uid"] == new_uid[0]
    assert any(k.startswith("stormdrill.dev/") for k in node["metadata"].get("annotations", {}))
    by_target = {e.target.name: e.state for e in store.entries(outcome.run.id)}
    assert by_target == {
        replaced: mutations.EntryState.REVERT_FAILED,
        ZONE_NODES[1]: mutations.EntryState.REVERTED,
    }
    reverted_events = [
        e
        for e in store.events(outcome.run.id, kind="mutation")
        if e.data.get("state") == "reverted" and e.data.get("seq") == entry.seq
    ]
    assert reverted_events == []
    assert store.events(outcome.run.id, kind=rollback.ROLLBACK_FAILED_EVENT)

    again = _cli(db_url, "recover", "--run", outcome.run.id)

    assert again.exit_code == 4, again.output
    assert "deleted and recreated by someone else" in again.stderr
    assert store.get_run(outcome.run.id).state is states.RunState.ROLLBACK_FAILED
    assert _our_taints(world) == {replaced: [TAINT_KEY], ZONE_NODES[1]: []}


def _stop_instances_only(doc: dict[str, Any]) -> None:
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    doc["spec"]["steps"] = [
        steps[name] for name in ("confirm-baseline", "stop-zone-instances", "hold-zone-down")
    ]
    doc["spec"].pop("rollback", None)


def _instance_states(world: stack.Sandbox, ids: Sequence[str]) -> dict[str, str]:
    ec2 = aws.session(region=world.info.region).client(
        "ec2", endpoint_url=world.info.aws_endpoint_url
    )
    found = ec2.describe_instances(InstanceIds=list(ids))["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def test_an_aws_permission_removed_mid_drill_ends_rollback_failed_and_recover_heals_it_after(
    world: stack.Sandbox, store: journal.Journal, db_url: str, tmp_path: Path
) -> None:
    proxy = refusals.RefusingAwsProxy(
        world.info.aws_endpoint_url, denied=frozenset({"StartInstances"})
    )
    with proxy:

        def through_proxy(doc: dict[str, Any]) -> None:
            doc["spec"]["aws"]["endpointUrl"] = proxy.url

        env_file = support.environment_variant(world, tmp_path / "env.yaml", through_proxy)
        path = support.scenario_variant(
            "az-failure-aws", tmp_path / "stop-only.yaml", _stop_instances_only
        )
        drill = support.bind(world, str(path), env=env_file, sets=support.FAST_SOAK)

        def remove_permission() -> None:
            proxy.armed = True

        outcome = support.make_engine(store, drill).run(
            drill, listener=_when_rolling_back(remove_permission)
        )

        assert outcome.run.state is states.RunState.ROLLBACK_FAILED
        assert outcome.exit_code == 4
        assert proxy.refused and set(proxy.refused) == {"StartInstances"}
        ids = sorted(entry.target.name for entry, _ in outcome.leftovers)
        assert len(ids) == 2
        assert all("UnauthorizedOperation" in error for _, error in outcome.leftovers)
        assert all(entry.target.region == "us-east-1" for entry, _ in outcome.leftovers)
        assert set(_instance_states(world, ids).values()) == {"stopped"}
        summaries = [rollback.describe_leftover(e, why) for e, why in outcome.leftovers]
        assert all("[region us-east-1]" in s and "aws.ec2.stop-instances" in s for s in summaries)
        assert store.events(outcome.run.id, kind=rollback.ROLLBACK_FAILED_EVENT)

        proxy.armed = False  # the permission is given back
        healed = _cli(db_url, "recover", "--run", outcome.run.id)

    assert healed.exit_code == 0, healed.output
    assert set(_instance_states(world, ids).values()) == {"running"}
    # Healed, the run ends as it was going to: completed, or aborted when a probe tripped a
    # guardrail during the soak (seen on a loaded machine: its rollback failed all the same).
    assert outcome.run.ending is not None
    assert outcome.run.ending.state in (states.RunState.COMPLETED, states.RunState.ABORTED)
    assert store.get_run(outcome.run.id).state is outcome.run.ending.state
