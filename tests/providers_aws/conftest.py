"""Fixtures for the AWS provider tests: a seeded moto, a run context pointed at it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import context, states
from orchestrator.providers.aws import connecting
from sandbox import aws
from tests.providers_aws import helpers


@pytest.fixture(scope="session")
def connections_cache() -> dict[str, connecting.AwsConnection]:
    """One AwsConnection per endpoint for the whole session (client creation is slow)."""
    return {}


@pytest.fixture
def environment(aws_seed: aws.AwsSeed, aws_endpoint_url: str) -> helpers.Environment:
    return helpers.environment(endpoint_url=aws_endpoint_url)


@pytest.fixture
def ctx(
    environment: helpers.Environment, connections_cache: dict[str, connecting.AwsConnection]
) -> context.RunContext:
    return helpers.run_context(environment, run_id=states.RunId("run-1"), cache=connections_cache)


@pytest.fixture
def conn(ctx: context.RunContext) -> connecting.AwsConnection:
    return connecting.of(ctx.connection("aws"))


@pytest.fixture
def expired_ctx(
    environment: helpers.Environment, connections_cache: dict[str, connecting.AwsConnection]
) -> context.RunContext:
    """A context of another run whose markers expired an hour ago."""
    return helpers.run_context(
        environment,
        run_id=states.RunId("run-dead"),
        expires_at=datetime.now(UTC) - timedelta(hours=1),
        cache=connections_cache,
    )


@pytest.fixture
def fresh_ctx(environment: helpers.Environment) -> context.RunContext:
    """A context with its own, new clients (for tests that hook the clients' events)."""
    return helpers.run_context(environment, run_id=states.RunId("run-1"))
