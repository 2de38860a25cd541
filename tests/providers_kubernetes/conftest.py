"""Fixtures for the Kubernetes provider tests: a run context over a private sandbox cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import context
from tests.fixtures import kube
from tests.providers_kubernetes import factories


@pytest.fixture
def ctx(fresh_kube: kube.KubeSandbox) -> Iterator[context.RunContext]:
    """A run context (run factories.RUN_ID) whose Kubernetes connection is the fresh sandbox."""
    run = factories.make_context(fresh_kube.kubeconfig)
    yield run
    factories.conn_of(run).close()
