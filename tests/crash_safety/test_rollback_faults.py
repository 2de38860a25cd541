"""Rollback under API faults: all reverted, or ROLLBACK_FAILED naming exactly what is left.

The drill runs in this process (the engine, not a child) so the test can turn faults on at the
moment the run enters ROLLING_BACK (after every apply, before the first revert): Kubernetes
500s, 504s and 409s from the sandbox's `FaultConfig`; AWS throttling from a botocore
`before-send` hook the test registers on the run's AWS connection. Afterwards, with faults
off, the journal's claims are checked against the world, and `stormdrill recover` must bring
everything back.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import pathlib
import random
from collections.abc import Mapping
from typing import Any, cast

import pytest
from botocore import awsrequest

from drills import binding
from orchestrator import engine, journal, mutations, retrying, states
from orchestrator.providers.aws import connecting
from sandbox import stack
from sandbox.kubernetes import resources, server
from tests.crash_safety import harness, scenarios

pytestmark = pytest.mark.slow

_E = mutations.EntryState
TAINT_KEY = "stormdrill.dev/crash"
MARKER_UNDO = "stormdrill.dev/undo"
MARKER_RUN = "stormdrill.dev/run-id"


def _config(retry: retrying.RetryPolicy) -> engine.EngineConfig:
    return engine.EngineConfig(
        retry=retry, stability_window_s=5.0, heartbeat_s=0.2, recovery_timeout_s=60.0
    )


def _marker_keys(obj: Mapping[str, Any] | None, run_id: str) -> set[str]:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(MARKER_RUN) != run_id:
        return set()
    return set(json.loads(annotations.get(MARKER_UNDO) or "{}"))


def _get(world: stack.Sandbox, kind: str, name: str, namespace: str | None) -> Any:
    cluster = world.store
    assert cluster is not None
    resource = {
        "node": resources.NODES,
        "deployment": resources.DEPLOYMENTS,
        "rolebinding": resources.ROLE_BINDINGS,
        "clusterrolebinding": resources.CLUSTER_ROLE_BINDINGS,
        "networkpolicy": resources.NETWORK_POLICIES,
    }[kind]
    for obj in cluster.list(resource=resource):
        meta: dict[str, Any] = dict(obj.get("metadata") or {})  # type: ignore[call-overload]
        if meta.get("name") == name and meta.get("namespace") == namespace:
            return obj
    return None


def _aspect(world: stack.Sandbox, entry: mutations.JournalEntry, run_id: str) -> Any:
    """What this one fault looks like in the world now (compare with before the drill)."""
    target = entry.target
    key = entry.undo.data.get("entry")
    if entry.action == "kubernetes.network.deny-egress":
        raw = entry.undo.data.get("policies")
        policies = raw if isinstance(raw, list) else []
        return [
            _get(world, "networkpolicy", str(p["name"]), str(p["namespace"])) is not None
            for p in policies
            if isinstance(p, Mapping)
        ]
    obj = _get(world, target.kind, target.name, target.namespace)
    marked = key in _marker_keys(obj, run_id)
    spec = (obj or {}).get("spec") or {}
    if entry.action == "kubernetes.nodes.cordon":
        return bool(spec.get("unschedulable")), marked
    if entry.action == "kubernetes.nodes.taint":
        return any(t.get("key") == TAINT_KEY for t in spec.get("taints") or []), marked
    if entry.action == "kubernetes.deployment.scale":
        return spec.get("replicas"), marked
    if entry.action == "kubernetes.rbac.revoke-subject":
        subjects = (obj or {}).get("subjects") or []
        return any(s.get("name") == "alice" for s in subjects), marked
    raise AssertionError(f"no aspect for {entry.action}")


def test_kubernetes_rollback_under_500s_timeouts_and_409s_never_claims_a_false_success(
    tmp_path: pathlib.Path, crash_seed: int
) -> None:
    kube_file, _ = scenarios.write(tmp_path)
    rng = random.Random(crash_seed * 7919 + 5)
    retry = retrying.RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_elapsed=5.0)
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    endings: collections.Counter[str] = collections.Counter()
    with stack.Sandbox(tmp_path / "sandbox", controller_interval_s=0.05) as world:
        kube = world.kube
        assert kube is not None
        drive = harness.Driver(tmp_path)
        try:
            before = harness.kube_world(world)
            for intensity in (0.15, 0.3, 0.45, 0.6):
                faults = server.FaultConfig(
                    error_rate=intensity,
                    timeout_rate=intensity / 2,
                    conflict_rate=intensity,
                    seed=rng.randrange(2**31),
                )
                what = f"seed {crash_seed}, faults {faults}"

                def listen(kind: str, _message: str, data: Mapping[str, Any]) -> None:
                    if kind == "state" and data.get("state") == "rolling_back":
                        kube.faults = faults  # noqa: B023 (this round's faults)

                bound = binding.bind(str(kube_file), env=str(world.info.environment), sets=[])
                with journal.open_store(db) as store:
                    eng = binding.make_engine(
                        store=store, catalog=None, config=_config(retry), killswitch_file=None
                    )
                    outcome = eng.run(bound.drill, listener=listen)
                    kube.faults = server.FaultConfig()
                    run = store.get_run(outcome.run.id)
                    entries = store.entries(run.id)
                listed = {item.seq for item in run.record.leftovers or ()}
                failed = {e.seq for e in entries if e.state is _E.REVERT_FAILED}
                endings[run.state.value] += 1
                assert listed == failed, f"{what}: leftovers {listed} but journal says {failed}"
                if failed:
                    assert run.state is states.RunState.ROLLBACK_FAILED, what
                else:
                    assert run.state is states.RunState.COMPLETED, f"{what}: {run.reason}"
                for entry in entries:
                    assert entry.state in (_E.REVERTED, _E.REVERT_FAILED), f"{what}: {entry}"
                    now = _aspect(world, entry, str(run.id))
                    was = _pre_aspect(entry)
                    if entry.state is _E.REVERTED:
                        assert now == was, f"{what}: {entry} claimed reverted but is {now}"
                    else:
                        assert now != was, f"{what}: leftover {entry} is not there ({now})"
                healed = drive.cli(["recover"], db=db)
                assert healed.code == 0, f"{what}:\n{healed.output()}"
                assert not harness.store_problems(db), what
                changes = list(harness.diff(before, harness.kube_world(world)))
                assert not changes, f"{what}:\n  " + "\n  ".join(changes)
        finally:
            drive.close()
    assert sum(endings.values()) == 4, endings


def test_kubernetes_rollback_throttled_by_apf_pauses_its_pool_and_reverts_everything(
    tmp_path: pathlib.Path, crash_seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    kube_file, _ = scenarios.write(tmp_path)
    retry = retrying.RetryPolicy(max_attempts=20, base_delay=0.01, max_delay=0.05, max_elapsed=120)
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    caplog.set_level(logging.WARNING, logger="orchestrator.rollback")
    with stack.Sandbox(tmp_path / "sandbox", controller_interval_s=0.05) as world:
        kube = world.kube
        assert kube is not None
        before = harness.kube_world(world)
        # API Priority and Fairness: plain-text 429s with `Retry-After: 1`.
        faults = server.FaultConfig(throttle_rate=0.3, retry_after_s=1, seed=crash_seed)
        writes = itertools.count()

        def first_writes_throttled(method: str, _path: str) -> bool:
            # The rollback's first two writes are throttled for sure (then 30 %, seeded): a
            # revert retried after a 429 is then certain, not 1 - 0.7^n.
            if method in ("PATCH", "PUT", "POST", "DELETE") and next(writes) >= 2:
                kube.faults = faults
            return False

        throttled = dataclasses.replace(
            faults, throttle_rate=1.0, on_request=first_writes_throttled
        )

        def listen(kind: str, _message: str, data: Mapping[str, Any]) -> None:
            if kind == "state" and data.get("state") == "rolling_back":
                kube.faults = throttled

        bound = binding.bind(str(kube_file), env=str(world.info.environment), sets=[])
        with journal.open_store(db) as store:
            eng = binding.make_engine(
                store=store, catalog=None, config=_config(retry), killswitch_file=None
            )
            outcome = eng.run(bound.drill, listener=listen)
            kube.faults = server.FaultConfig()
            entries = store.entries(outcome.run.id)
            timeline = store.events(outcome.run.id)
        world.wait_settled()
        after = harness.kube_world(world)
    assert outcome.run.state is states.RunState.COMPLETED, outcome.run.reason
    assert [e for e in entries if e.state is not _E.REVERTED] == []
    assert any(e.attempts > 1 for e in entries), [(e.action, e.attempts) for e in entries]
    paused = [r.getMessage() for r in caplog.records if "is throttling" in r.getMessage()]
    assert paused and all(m.startswith("kubernetes is throttling") for m in paused), paused
    reverted = {e.data.get("seq") for e in timeline if e.message.startswith("reverted #")}
    assert reverted == {e.seq for e in entries}
    changes = list(harness.diff(before, after))
    assert not changes, "\n  ".join(changes)


def _pre_aspect(entry: mutations.JournalEntry) -> Any:
    """The aspect before the drill (the seeded shop: nothing of ours, nodes schedulable)."""
    if entry.action == "kubernetes.network.deny-egress":
        raw = entry.undo.data.get("policies")
        return [False for _ in (raw if isinstance(raw, list) else [])]
    pre = entry.pre_state
    if entry.action == "kubernetes.nodes.cordon":
        return bool(pre.get("unschedulable")), False
    if entry.action == "kubernetes.nodes.taint":
        return False, False
    if entry.action == "kubernetes.deployment.scale":
        return pre.get("replicas"), False
    if entry.action == "kubernetes.rbac.revoke-subject":
        return True, False
    raise AssertionError(f"no aspect for {entry.action}")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class Throttler:
    """A `before-send` hook: while on, the first `times` sends of each mutating call throttle."""

    def __init__(self, times: int) -> None:
        self.on = False
        self.times = times
        self.throttled: collections.Counter[str] = collections.Counter()

    def __call__(self, event_name: str, **_: Any) -> awsrequest.AWSResponse | None:
        service, operation = event_name.split(".")[1:3]
        if not self.on or operation.startswith(("Describe", "List", "Get")):
            return None
        if self.throttled[operation] >= self.times:
            return None
        self.throttled[operation] += 1
        if service == "ec2":
            code, status = "RequestLimitExceeded", 503
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>Request limit exceeded."
                "</Message></Error></Errors><RequestID>throttled</RequestID></Response>"
            )
        else:
            code, status = "ThrottlingException", 400
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>Rate "
                "exceeded</Message></Error><RequestId>throttled</RequestId></ErrorResponse>"
            )
        headers = awsrequest.HTTPHeaders()
        return awsrequest.AWSResponse(
            "https://throttled.invalid", status, headers, _Raw(body.encode())
        )


def test_aws_rollback_retries_throttling_with_backoff_and_reverts_everything(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, aws_file = scenarios.write(tmp_path)
    throttle = Throttler(times=1)
    retry = retrying.RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.1, max_elapsed=30.0)
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    caplog.set_level(logging.WARNING, logger="orchestrator.rollback")
    with stack.Sandbox(tmp_path / "sandbox") as world:
        before = harness.aws_world(world)
        bound = binding.bind(str(aws_file), env=str(world.info.environment), sets=[])
        with journal.open_store(db) as store:
            eng = binding.make_engine(
                store=store, catalog=None, config=_config(retry), killswitch_file=None
            )
            connect = eng.registry.connectors()[connecting.PROVIDER]

            def hooked(environment: Any) -> object:
                conn = connect(environment)
                assert isinstance(conn, connecting.AwsConnection)
                conn.session.events.register("before-send", cast(Any, throttle))
                return conn

            eng.registry.register_connector(connecting.PROVIDER, hooked)

            def listen(kind: str, _message: str, data: Mapping[str, Any]) -> None:
                if kind == "state" and data.get("state") == "rolling_back":
                    throttle.on = True

            outcome = eng.run(bound.drill, listener=listen)
            throttle.on = False
            entries = store.entries(outcome.run.id)
        after = harness.aws_world(world)
    assert outcome.run.state is states.RunState.COMPLETED, outcome.run.reason
    assert [e for e in entries if e.state is not _E.REVERTED] == []
    assert {"StartInstances", "ReplaceNetworkAclAssociation", "ResumeProcesses"} <= set(
        throttle.throttled
    ), throttle.throttled
    assert any(e.attempts > 1 for e in entries), [(e.action, e.attempts) for e in entries]
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    changes = list(harness.diff(before, after))
    assert not changes, "\n  ".join(changes)
