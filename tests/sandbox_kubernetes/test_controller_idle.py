"""The controller's idle signal: `wait_idle` ends only after a clean pass over the current store."""

from __future__ import annotations

import pathlib
from typing import Any

from sandbox.kubernetes import resources
from tests.fixtures import kube


def _ready(sandbox: kube.KubeSandbox, name: str) -> object:
    deployment = sandbox.store.get(resource=resources.DEPLOYMENTS, namespace="shop", name=name)
    status: Any = deployment.get("status") or {}
    return status.get("readyReplicas")


def test_a_stopped_controller_is_never_idle(tmp_path: pathlib.Path) -> None:
    sandbox = kube.start_sandbox(tmp_path, run_controller=False)
    try:
        assert sandbox.controller.idle() is False
        assert sandbox.controller.wait_idle(timeout_s=0.2) is False
        assert sandbox.controller.generation == 0
    finally:
        kube.stop_sandbox(sandbox)


def test_a_write_ends_idleness_until_a_pass_has_reconciled_it(
    fresh_kube: kube.KubeSandbox,
) -> None:
    loop = fresh_kube.controller
    assert loop.wait_idle(timeout_s=10)
    settled_at = loop.generation

    fresh_kube.store.patch(
        resource=resources.DEPLOYMENTS,
        namespace="shop",
        name="inventory",
        patch={"spec": {"replicas": 1}},
    )
    assert loop.wait_idle(timeout_s=10)

    assert loop.generation > settled_at  # a pass after the write ended the wait
    assert _ready(fresh_kube, "inventory") == 1  # and idle means its effect is written
    assert loop.idle()
