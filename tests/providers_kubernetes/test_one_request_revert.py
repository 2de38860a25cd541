"""One request per revert: a JSON Patch whose `test`s guard it, or a DELETE with preconditions.

Every count is the sandbox API server's own (`request_count`, and the (method, path) of each
resource request seen through `FaultConfig.on_request`); every outcome is read back. When the
object is not as the apply left it, the server refuses the patch and the revert reads the
object as it always did, so what is reported is unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator import context, errors, mutations
from orchestrator.providers.kubernetes import (
    healing,
    markers,
    network,
    nodes,
    objects,
    rbac,
    workloads,
)
from sandbox.kubernetes import patching, resources
from tests.fixtures import kube
from tests.providers_kubernetes import factories

NODE = "node-us-east-1a-1"
INVENTORY = factories.ref("deployment", "inventory", "shop")
PAYMENTS = factories.ref("deployment", "payments", "shop")
WEB = factories.ref("deployment", "web", "shop")
ALICE = factories.ref("subject", "User:alice")
RBAC_GROUP = "rbac.authorization.k8s.io"
DRILL_TAINT = {"key": "stormdrill.dev/zone-down", "effect": "NoSchedule"}


@dataclasses.dataclass
class Seen:
    """The requests the sandbox received inside a `counted` block."""

    calls: list[tuple[str, str]]
    total: int = 0


@contextlib.contextmanager
def counted(sandbox: kube.KubeSandbox) -> Iterator[Seen]:
    seen = Seen(calls=[])

    def hook(method: str, path: str) -> bool:
        seen.calls.append((method, path))
        return False

    before = sandbox.server.request_count
    sandbox.server.faults.on_request = hook
    try:
        yield seen
    finally:
        sandbox.server.faults.on_request = None
        seen.total = sandbox.server.request_count - before


def _node(ctx: context.RunContext, name: str = NODE) -> dict[str, Any]:
    found = objects.read(factories.conn_of(ctx), factories.node(name))
    assert found is not None
    return found


def _with_uid(ctx: context.RunContext, ref: mutations.TargetRef) -> mutations.TargetRef:
    found = objects.read(factories.conn_of(ctx), ref)
    assert found is not None
    return dataclasses.replace(ref, uid=found["metadata"]["uid"])


def _without_snapshot(undo: mutations.UndoToken) -> mutations.UndoToken:
    """The token as a journal written before snapshots (or before mark_applied) holds it."""
    data = {k: v for k, v in undo.data.items() if k != healing.SNAPSHOT}
    return mutations.UndoToken(action=undo.action, data=data)


# ---- one request -----------------------------------------------------------------------------


def test_a_cordon_is_undone_by_one_json_patch_that_leaves_the_node_as_before(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target]))
    snap = token.data[healing.SNAPSHOT]
    assert isinstance(snap, dict)
    assert snap["uid"] == _node(ctx)["metadata"]["uid"]
    assert snap["annotations"] == {
        k: v for k, v in factories.annotations_on(ctx, target).items() if k in markers.ANNOTATIONS
    }

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert (seen.total, seen.calls) == (1, [("PATCH", f"/api/v1/nodes/{NODE}")])
    assert factories.states_of(ctx, [target]) == before


def test_cordon_then_taint_on_one_node_are_each_undone_in_one_request_newest_first(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    cordon, taint = nodes.CordonAction(), nodes.TaintAction()
    (cordoned,) = factories.apply_all(
        cordon, ctx, factories.plan(cordon, ctx, [target], step="cordon-zone")
    )
    (tainted,) = factories.apply_all(
        taint, ctx, factories.plan(taint, ctx, [target], DRILL_TAINT, step="taint-zone")
    )
    undo_after = {
        name: token.data[healing.SNAPSHOT]["annotations"][markers.UNDO]  # type: ignore[index, call-overload]
        for name, token in (("cordon", cordoned), ("taint", tainted))
    }
    assert factories.annotations_on(ctx, target)[markers.UNDO] == undo_after["taint"]

    with counted(fresh_kube) as seen:
        taint.revert(ctx, undo=tainted)  # the newest entry first, as rollback does

    assert seen.total == 1
    node = _node(ctx)
    assert node["spec"].get("taints") is None and node["spec"]["unschedulable"] is True
    # What the cordon's apply recorded is exactly what the node carries now.
    assert factories.annotations_on(ctx, target)[markers.UNDO] == undo_after["cordon"]

    with counted(fresh_kube) as seen:
        cordon.revert(ctx, undo=cordoned)

    assert seen.total == 1
    assert factories.states_of(ctx, [target]) == before


def test_a_taint_that_replaced_a_value_is_undone_in_one_request_restoring_the_value(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    conn = factories.conn_of(ctx)
    theirs = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    other = {"key": "gpu", "value": "yes", "effect": "NoExecute"}
    objects.patch(conn, target, {"spec": {"taints": [other, theirs]}})
    action = nodes.TaintAction()
    planned = factories.plan(action, ctx, [target], {**theirs, "value": "drill"})
    (token,) = factories.apply_all(action, ctx, planned)
    assert _node(ctx)["spec"]["taints"] == [other, {**theirs, "value": "drill"}]

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert seen.total == 1
    assert _node(ctx)["spec"]["taints"] == [other, theirs]
    assert not set(factories.annotations_on(ctx, target)) & set(markers.ANNOTATIONS)


def test_a_drain_is_uncordoned_in_one_request(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.DrainAction()
    target = factories.node(NODE)
    (token, *unowned) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [target], {"timeout": "30s"})
    )
    assert unowned == []

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert (seen.total, seen.calls) == (1, [("PATCH", f"/api/v1/nodes/{NODE}")])
    assert _node(ctx)["spec"].get("unschedulable") is None
    assert not set(factories.annotations_on(ctx, target)) & set(markers.ANNOTATIONS)


def test_a_scale_is_undone_by_one_patch_of_the_deployment_itself(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = workloads.ScaleAction()
    before = factories.states_of(ctx, [INVENTORY])
    (token,) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [INVENTORY], {"replicas": 0})
    )

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    path = "/apis/apps/v1/namespaces/shop/deployments/inventory"
    assert (seen.total, seen.calls) == (1, [("PATCH", path)])
    found = objects.read(factories.conn_of(ctx), INVENTORY)
    assert found is not None and found["spec"]["replicas"] == 2
    assert not set(factories.annotations_on(ctx, INVENTORY)) & set(markers.ANNOTATIONS)
    kube.eventually(
        lambda: factories.states_of(ctx, [INVENTORY]) == before,
        what="the deployment equal to its state before the drill",
    )


def test_a_scale_whose_count_someone_changed_is_still_restored_in_one_request(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = workloads.ScaleAction()
    (token,) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [INVENTORY], {"replicas": 0})
    )
    objects.patch(factories.conn_of(ctx), INVENTORY, {"spec": {"replicas": 5}})  # an autoscaler

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert seen.total == 1  # as `heal`, the undo restores the count seen before, whatever it is
    found = objects.read(factories.conn_of(ctx), INVENTORY)
    assert found is not None and found["spec"]["replicas"] == 2


def test_revoking_a_subject_is_undone_in_one_request_per_binding(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = rbac.RevokeSubjectAction()
    touched = [
        factories.ref("rolebinding", "payments-oncall", "shop"),
        factories.ref("clusterrolebinding", "shop-admins"),
    ]
    before = factories.states_of(ctx, touched)
    tokens = factories.apply_all(action, ctx, factories.plan(action, ctx, [ALICE]))
    assert len(tokens) == 2 and all(healing.SNAPSHOT in t.data for t in tokens)

    for token in reversed(tokens):
        with counted(fresh_kube) as seen:
            action.revert(ctx, undo=token)
        assert (seen.total, [m for m, _ in seen.calls]) == (1, ["PATCH"])

    assert factories.states_of(ctx, touched) == before


def test_revoking_the_only_subject_of_a_binding_is_undone_in_one_request(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    fresh_kube.store.create(
        resource=resources.ROLE_BINDINGS,
        obj={
            "metadata": {"name": "alice-only", "namespace": "shop"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": RBAC_GROUP}],
        },
    )
    binding = factories.ref("rolebinding", "alice-only", "shop")
    before = factories.states_of(ctx, [binding])
    action = rbac.RevokeSubjectAction()
    planned = [m for m in factories.plan(action, ctx, [ALICE]) if m.target.key == binding.key]
    (token,) = factories.apply_all(action, ctx, planned)
    found = objects.read(factories.conn_of(ctx), binding)
    assert found is not None and not found.get("subjects")

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert seen.total == 1
    assert factories.states_of(ctx, [binding]) == before


def test_a_created_policy_is_deleted_in_one_request_with_preconditions(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.PartitionAction()
    planned = factories.plan(
        action, ctx, [WEB], {"peerLabels": {"app.kubernetes.io/name": "checkout"}}
    )
    (token,) = factories.apply_all(action, ctx, planned)
    created = token.data[network.CREATED_KEY]
    assert isinstance(created, dict) and len(created) == 2

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert seen.total == 2  # two policies: one DELETE each
    assert [m for m, _ in seen.calls] == ["DELETE", "DELETE"]
    assert _policies(ctx) == []


def test_reverting_an_object_that_is_gone_is_one_request_and_success(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.DenyEgressAction()
    (token,) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [PAYMENTS], {"cidr": "203.0.113.0/24"})
    )
    (policy,) = _policies(ctx)
    ref = objects.ref_of(policy, kind="networkpolicy")
    assert objects.delete(factories.conn_of(ctx), ref)
    scale = workloads.ScaleAction()
    (scaled,) = factories.apply_all(
        scale, ctx, factories.plan(scale, ctx, [INVENTORY], {"replicas": 0})
    )
    fresh_kube.store.delete(resource=resources.DEPLOYMENTS, namespace="shop", name="inventory")

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)
        scale.revert(ctx, undo=scaled)

    assert seen.total == 2
    assert _policies(ctx) == []
    assert objects.read(factories.conn_of(ctx), INVENTORY) is None


# ---- the server refuses: the reading path decides, as before ---------------------------------


def test_a_node_someone_uncordoned_is_read_and_only_our_markers_are_removed(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = nodes.CordonAction()
    target = factories.node(NODE)
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target]))
    objects.patch(factories.conn_of(ctx), target, {"spec": {"unschedulable": None}})

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    # The refused patch, then today's read and conditional write.
    assert [m for m, _ in seen.calls] == ["PATCH", "GET", "PATCH"]
    assert _node(ctx)["spec"].get("unschedulable") is None
    assert not set(factories.annotations_on(ctx, target)) & set(markers.ANNOTATIONS)


def test_a_taint_next_to_one_someone_added_is_read_and_only_ours_is_removed(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    action = nodes.TaintAction()
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target], DRILL_TAINT))
    theirs = {"key": "maintenance", "value": "now", "effect": "NoSchedule"}
    objects.patch(factories.conn_of(ctx), target, {"spec": {"taints": [DRILL_TAINT, theirs]}})

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert [m for m, _ in seen.calls] == ["PATCH", "GET", "PATCH"]
    assert _node(ctx)["spec"]["taints"] == [theirs]
    assert not set(factories.annotations_on(ctx, target)) & set(markers.ANNOTATIONS)


def test_a_binding_someone_changed_gets_back_only_what_we_removed(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    binding = factories.ref("rolebinding", "payments-oncall", "shop")
    action = rbac.RevokeSubjectAction()
    planned = [m for m in factories.plan(action, ctx, [ALICE]) if m.target.key == binding.key]
    (token,) = factories.apply_all(action, ctx, planned)
    bob = {"kind": "User", "name": "bob", "apiGroup": RBAC_GROUP}
    objects.patch(factories.conn_of(ctx), binding, {"subjects": [bob]})

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    # The refused patch, then today's path: the planned ref has a uid, so the incarnation is
    # checked (one read) before the heal reads and writes.
    assert [m for m, _ in seen.calls] == ["PATCH", "GET", "GET", "PATCH"]
    found = objects.read(factories.conn_of(ctx), binding)
    assert found is not None
    assert found["subjects"] == [bob, {"kind": "User", "name": "alice", "apiGroup": RBAC_GROUP}]


def test_reverting_twice_is_success_and_the_second_time_writes_nothing(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    action = nodes.TaintAction()
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target], DRILL_TAINT))
    action.revert(ctx, undo=token)

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert [m for m, _ in seen.calls] == ["PATCH", "GET"]  # refused, then nothing of ours found
    assert factories.states_of(ctx, [target]) == before


def test_a_node_deleted_and_recreated_with_our_markers_is_refused_and_left_alone(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = _with_uid(ctx, factories.node(NODE))
    action = nodes.TaintAction()
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target], DRILL_TAINT))
    old = _node(ctx)
    fresh_kube.store.delete(resource=resources.NODES, namespace=None, name=NODE)
    manifest = copy.deepcopy(old)
    for field in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        manifest["metadata"].pop(field, None)
    created: dict[str, Any] = dict(fresh_kube.store.create(resource=resources.NODES, obj=manifest))
    new_uid = str(created["metadata"]["uid"])

    with pytest.raises(errors.TargetReplaced, match="deleted and recreated by someone else") as err:
        action.revert(ctx, undo=token)

    assert new_uid in str(err.value)
    node = _node(ctx)
    assert node["metadata"]["uid"] == new_uid
    assert node["spec"]["taints"] == old["spec"]["taints"]
    assert factories.annotations_on(ctx, target) == old["metadata"]["annotations"]


def test_a_policy_someone_changed_is_read_then_deleted_as_before(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.DenyEgressAction()
    (token,) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [PAYMENTS], {"cidr": "203.0.113.0/24"})
    )
    (policy,) = _policies(ctx)
    ref = objects.ref_of(policy, kind="networkpolicy")
    objects.patch(factories.conn_of(ctx), ref, {"metadata": {"labels": {"owner": "someone"}}})

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=token)

    assert [m for m, _ in seen.calls] == ["DELETE", "GET", "DELETE"]
    assert _policies(ctx) == []


def test_a_policy_recreated_by_another_run_under_our_name_is_left_alone(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = network.DenyEgressAction()
    (token,) = factories.apply_all(
        action, ctx, factories.plan(action, ctx, [PAYMENTS], {"cidr": "203.0.113.0/24"})
    )
    (policy,) = _policies(ctx)
    ref = objects.ref_of(policy, kind="networkpolicy")
    assert objects.delete(factories.conn_of(ctx), ref)
    theirs = copy.deepcopy(policy)
    for field in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        theirs["metadata"].pop(field, None)
    theirs["metadata"]["annotations"][markers.RUN_ID] = factories.OTHER_RUN_ID
    fresh_kube.store.create(resource=resources.NETWORK_POLICIES, obj=theirs, namespace="shop")

    action.revert(ctx, undo=token)

    (left,) = _policies(ctx)
    assert left["metadata"]["annotations"][markers.RUN_ID] == factories.OTHER_RUN_ID


def test_a_token_without_a_snapshot_is_undone_by_reading_first(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    before = factories.states_of(ctx, [target])
    action = nodes.CordonAction()
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target]))

    with counted(fresh_kube) as seen:
        action.revert(ctx, undo=_without_snapshot(token))

    assert [m for m, _ in seen.calls] == ["GET", "PATCH"]
    assert factories.states_of(ctx, [target]) == before


def test_a_conflict_on_the_one_request_changes_nothing_and_asks_for_the_reading_path(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    target = factories.node(NODE)
    action = nodes.CordonAction()
    (token,) = factories.apply_all(action, ctx, factories.plan(action, ctx, [target]))
    snap = token.data[healing.SNAPSHOT]
    assert isinstance(snap, dict)
    cordoned = factories.states_of(ctx, [target])
    fresh_kube.server.faults.conflict_rate = 1.0

    done = healing.heal_at_once(
        factories.conn_of(ctx),
        target,
        run_id=factories.RUN_ID,
        key=healing.CORDON,
        snap=snap,
        step="inject",
    )

    fresh_kube.server.faults.conflict_rate = 0.0
    assert done is healing.AtOnce.FALL_BACK
    assert factories.states_of(ctx, [target]) == cordoned


def test_a_snapshot_of_another_run_or_step_is_never_sent() -> None:
    obj = {
        "metadata": {
            "uid": "u1",
            "annotations": {
                markers.RUN_ID: factories.RUN_ID,
                markers.EXPIRES_AT: "2030-01-01T00:00:00Z",
                markers.UNDO: '{"cordon":{"by":"inject"}}',
            },
        },
        "spec": {"unschedulable": True},
    }
    snap = healing.snapshot(obj, key=healing.CORDON)
    assert snap is not None

    assert healing.revert_ops(snap, run_id=factories.OTHER_RUN_ID, key=healing.CORDON) is None
    assert healing.revert_ops(snap, run_id=factories.RUN_ID, key="scale") is None
    assert (
        healing.revert_ops(snap, run_id=factories.RUN_ID, key=healing.CORDON, step="other") is None
    )
    ops = healing.revert_ops(snap, run_id=factories.RUN_ID, key=healing.CORDON, step="inject")
    assert ops is not None and [op["op"] for op in ops[:3]] == ["test", "test", "test"]
    assert ops[1]["path"] == "/metadata/annotations/stormdrill.dev~1run-id"
    assert ops[2] == {
        "op": "test",
        "path": "/metadata/annotations/stormdrill.dev~1undo",
        "value": '{"cordon":{"by":"inject"}}',
    }


# ---- the JSON Patch removes markers exactly as the merge patch does -------------------------


def _marked(*, entries: str, others: dict[str, str], label: bool) -> dict[str, Any]:
    labels = {"app": "x", **({markers.RUN_ID: "r"} if label else {})}
    return {
        "metadata": {
            "name": "n",
            "labels": labels,
            "annotations": {
                **others,
                markers.RUN_ID: factories.RUN_ID,
                markers.EXPIRES_AT: "2030-01-01T00:00:00Z",
                markers.UNDO: entries,
            },
        },
    }


def _dropped_empty(obj: dict[str, Any]) -> dict[str, Any]:
    """As the API server serialises it: empty label and annotation maps are omitted."""
    meta = {k: v for k, v in obj["metadata"].items() if v not in ({}, None)}
    return {**obj, "metadata": meta}


@pytest.mark.parametrize(
    ("entries", "others", "label"),
    [
        ('{"cordon":{"by":"s"}}', {}, False),
        ('{"cordon":{"by":"s"}}', {"team": "infra"}, True),
        ('{"cordon":{"by":"s"},"taint:k:NoSchedule":{"by":"t"}}', {"team": "infra"}, False),
        ('{"taint:k:NoSchedule":{"by":"t"},"cordon":{"by":"s"}}', {}, True),
    ],
)
def test_the_json_patch_removing_markers_leaves_what_the_merge_patch_leaves(
    entries: str, others: dict[str, str], label: bool
) -> None:
    obj = _marked(entries=entries, others=others, label=label)
    keys = {healing.CORDON}

    merged = patching.merge_patch(obj, {"metadata": markers.remove_entries(obj, keys=keys)})
    patched = patching.json_patch(obj, markers.remove_entries_ops(obj, keys=keys))

    assert _dropped_empty(patched) == _dropped_empty(merged)


def _policies(ctx: context.RunContext) -> list[dict[str, Any]]:
    conn = factories.conn_of(ctx)
    return objects.items(
        conn.call("policies", conn.networking.list_namespaced_network_policy, "shop")
    )
