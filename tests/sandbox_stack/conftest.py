"""Fixtures of the sandbox-stack tests: a whole running sandbox, or the shop's workloads alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from sandbox import stack, workloads
from tests.fixtures import kube
from tests.sandbox_stack import support


@pytest.fixture
def running_sandbox(tmp_path: Path) -> Iterator[stack.Sandbox]:
    """A started sandbox whose state dir is a fresh temporary directory."""
    with stack.Sandbox(tmp_path / "state", controller_interval_s=0.05) as sandbox:
        yield sandbox


@pytest.fixture
def kube_api(running_sandbox: stack.Sandbox) -> Iterator[client.ApiClient]:
    """The official Kubernetes client configured from the running sandbox's kubeconfig."""
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(running_sandbox.info.kubeconfig), context=stack.CONTEXT
    )
    with api:
        yield api


@pytest.fixture
def shop(fresh_kube: kube.KubeSandbox) -> Iterator[support.Shop]:
    """Simulated workloads reading a private, seeded, controller-driven cluster (no AWS)."""
    server = workloads.WorkloadServer(fresh_kube.store)
    server.start()
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(fresh_kube.kubeconfig)
    )
    try:
        yield support.Shop(server, api)
    finally:
        api.close()  # type: ignore[no-untyped-call]
        server.stop()
