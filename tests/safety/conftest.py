"""Fixtures for the safety tests: a journal to plan with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import context, journal
from tests.fixtures import kube
from tests.providers_kubernetes import factories


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


@pytest.fixture
def ctx(fresh_kube: kube.KubeSandbox) -> Iterator[context.RunContext]:
    """A run context whose Kubernetes connection is the fresh sandbox (as the provider tests)."""
    run = factories.make_context(fresh_kube.kubeconfig)
    yield run
    factories.conn_of(run).close()
