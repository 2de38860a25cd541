"""Helpers for the AWS provider tests: contexts, describe snapshots, fault injection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore import awsrequest

from orchestrator import context, mutations, registry, states
from orchestrator.providers.aws import connecting, plugin
from scenarios import models

Environment = models.Environment


def environment(
    *, endpoint_url: str, protected: Sequence[str] = ("frank",), role_arn: str | None = None
) -> models.Environment:
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "sandbox"},
            "spec": {
                "aws": {
                    "region": "us-east-1",
                    "endpointUrl": endpoint_url,
                    "protectedPrincipals": list(protected),
                    **({"roleArn": role_arn} if role_arn else {}),
                }
            },
        }
    )


def connect(env: models.Environment) -> connecting.AwsConnection:
    return connecting.connect(env, credentials=connecting.DUMMY_CREDENTIALS)


def run_context(
    env: models.Environment,
    *,
    run_id: states.RunId,
    expires_at: datetime | None = None,
    cache: dict[str, connecting.AwsConnection] | None = None,
) -> context.RunContext:
    def cached(env: models.Environment) -> connecting.AwsConnection:
        if cache is None:
            return connect(env)
        key = env.model_dump_json()
        if key not in cache:
            cache[key] = connect(env)
        return cache[key]

    return context.RunContext(
        run_id=run_id,
        environment=env,
        connections=context.Connections(env, {"aws": cached}),
        expires_at=expires_at or datetime.now(UTC) + timedelta(hours=1),
    )


def registry_with_aws() -> registry.Registry:
    reg = registry.Registry()
    plugin.register(reg)
    return reg


def action(name: str) -> registry.Action[Any]:
    return registry_with_aws().get_action(name)()


def ref(kind: str, name: str) -> mutations.TargetRef:
    return mutations.TargetRef(provider="aws", kind=kind, name=name, region="us-east-1")


def target(kind: str, **selector: Any) -> models.Target:
    return models.Target.model_validate({"provider": "aws", "kind": kind, "selector": selector})


def apply_all(
    act: registry.Action[Any],
    ctx: registry.ProviderContext,
    planned: Sequence[mutations.PlannedMutation],
) -> list[mutations.UndoToken]:
    tokens = []
    for mutation in planned:
        refined = act.apply(ctx, mutation=mutation)
        tokens.append(refined or mutation.undo)
    return tokens


def plan(
    act: registry.Action[Any],
    ctx: registry.ProviderContext,
    refs: Sequence[mutations.TargetRef],
    params: Mapping[str, Any] | None = None,
) -> list[mutations.PlannedMutation]:
    return act.plan(ctx, targets=refs, params=act.parse_params(params or {}))


def strip(value: Any) -> Any:
    """A describe answer without ResponseMetadata (request ids differ per call)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


# ---- fault injection at the wire (a botocore event hook, never a patch) ------------------


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class Throttle:
    """Answer the first `times` calls of `operation` with a 400 throttling error."""

    def __init__(self, client: Any, operation: str, *, times: int, code: str) -> None:
        self.remaining = times
        self.code = code
        self.calls = 0
        service = client.meta.service_model.endpoint_prefix
        self.ec2_style = service == "ec2"
        client.meta.events.register(f"before-send.{service}.{operation}", self._hook)

    def _hook(
        self, request: awsrequest.AWSPreparedRequest, **_: Any
    ) -> awsrequest.AWSResponse | None:
        self.calls += 1
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        if self.ec2_style:
            text = (
                f"<Response><Errors><Error><Code>{self.code}</Code><Message>Rate exceeded"
                "</Message></Error></Errors><RequestID>test</RequestID></Response>"
            )
        else:
            text = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{self.code}</Code>"
                "<Message>Rate exceeded</Message></Error><RequestId>test</RequestId>"
                "</ErrorResponse>"
            )
        body = text.encode()
        return awsrequest.AWSResponse(request.url, 400, awsrequest.HTTPHeaders(), _Body(body))
