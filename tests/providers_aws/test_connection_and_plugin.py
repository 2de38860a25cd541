"""The connection (region, endpoint, role), error mapping and what the plugin registers."""

from __future__ import annotations

import socket

import pytest

from orchestrator import errors, registry
from orchestrator.providers.aws import connecting, plugin, resolving, wrapping
from scenarios import library, loading, models
from tests.providers_aws import helpers


def test_plugin_registers_connector_actions_probe_resolvers_and_sweeper() -> None:
    reg = registry.Registry()
    plugin.register(reg)

    assert [a.name for a in reg.actions()] == [
        "aws.autoscaling.remove-zone",
        "aws.ec2.stop-instances",
        "aws.iam.suspend-access",
        "aws.network.deny-egress",
        "aws.network.isolate-region",
        "aws.network.isolate-subnets",
        "aws.rds.failover",
        "aws.rds.global-failover",
        "aws.route53.fail-health-check",
    ]
    assert "aws" in reg.connectors()
    assert {kind for kind in resolving.KINDS if reg.resolver(provider="aws", kind=kind)} == set(
        resolving.KINDS
    )
    assert [s.provider for s in reg.sweepers()] == ["aws", "aws"]  # subnets etc., Route 53


def test_every_client_uses_the_environment_endpoint_and_region(aws_endpoint_url: str) -> None:
    conn = helpers.connect(helpers.environment(endpoint_url=aws_endpoint_url))

    for client in (conn.ec2(), conn.autoscaling(), conn.rds(), conn.iam(), conn.cloudwatch()):
        assert client.meta.endpoint_url == aws_endpoint_url
        assert client.meta.region_name == "us-east-1"


def test_role_arn_is_assumed_through_sts_at_the_endpoint(aws_endpoint_url: str) -> None:
    env = helpers.environment(
        endpoint_url=aws_endpoint_url, role_arn="arn:aws:iam::123456789012:role/drills"
    )

    conn = helpers.connect(env)
    credentials = conn.session.get_credentials()

    assert credentials is not None
    assert str(credentials.get_frozen_credentials().access_key).startswith("ASIA")
    conn.ec2().describe_vpcs()  # the assumed credentials work against the endpoint


def test_an_environment_without_aws_is_a_permanent_error_naming_the_fix() -> None:
    env = models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "x"},
            "spec": {},
        }
    )

    with pytest.raises(errors.ProviderPermanent, match=r"no spec\.aws"):
        connecting.connect(env)


def test_server_errors_and_throttling_are_retryable_and_the_rest_permanent() -> None:
    def client_error(code: str, status: int) -> wrapping.ClientError:
        return wrapping.ClientError(
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
            },
            "Op",
        )

    for code in (
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    ):
        assert isinstance(wrapping.wrap(client_error(code, 400), "t"), errors.ProviderRetryable)
    assert isinstance(wrapping.wrap(client_error("Boom", 503), "t"), errors.ProviderRetryable)
    permanent = wrapping.wrap(client_error("AccessDenied", 403), "aws subnet x")
    assert isinstance(permanent, errors.ProviderPermanent)
    assert str(permanent) == "aws subnet x: AccessDenied: m"


def test_an_unreachable_endpoint_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    conn = helpers.connect(helpers.environment(endpoint_url=f"http://127.0.0.1:{port}"))

    with pytest.raises(errors.ProviderRetryable, match="cannot reach AWS"), wrapping.edge("t"):
        conn.ec2().describe_vpcs()


@pytest.mark.parametrize("name", ["az-failure-aws", "az-failure", "third-party-outage"])
def test_bundled_scenarios_aws_steps_and_probes_parse(name: str) -> None:
    reg = helpers.registry_with_aws()
    scenario = loading.load_scenario(library.find(name)).model
    for step in (*scenario.spec.steps, *scenario.spec.rollback):
        if step.action and step.action.startswith("aws."):
            reg.get_action(step.action)().parse_params(dict(step.params))
            target = scenario.spec.targets[step.target or ""]
            assert target.kind in reg.get_action(step.action).target_kinds
    for probe in scenario.spec.steady_state:
        if probe.type.startswith("aws."):
            reg.get_probe(probe.type)().parse_params(dict(probe.params))
