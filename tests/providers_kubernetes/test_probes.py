"""Probes: deployment availability and Ready pods (optionally per zone)."""

from __future__ import annotations

from orchestrator import context
from orchestrator.providers.kubernetes import probes
from tests.fixtures import kube


def test_deployment_available_passes_at_the_minimum_and_fails_above_it(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    probe = probes.DeploymentAvailableProbe()
    writes = fresh_kube.server.mutating_request_count

    ok = probe.check(
        ctx, params=probe.parse_params({"namespace": "shop", "name": "web", "minAvailable": 3})
    )
    short = probe.check(
        ctx, params=probe.parse_params({"namespace": "shop", "name": "web", "minAvailable": 4})
    )
    missing = probe.check(ctx, params=probe.parse_params({"namespace": "shop", "name": "nope"}))

    assert fresh_kube.server.mutating_request_count == writes
    assert (ok.ok, ok.value) == (True, 3)
    assert not short.ok and "needs at least 4" in short.message
    assert not missing.ok and "does not exist" in missing.message


def test_pods_ready_counts_ready_pods_by_selector_and_zone(ctx: context.RunContext) -> None:
    probe = probes.PodsReadyProbe()

    payments = probe.check(
        ctx,
        params=probe.parse_params(
            {"namespace": "shop", "selector": "app.kubernetes.io/name=payments", "minReady": 1}
        ),
    )
    per_zone = [
        probe.check(
            ctx,
            params=probe.parse_params(
                {"namespace": "shop", "selector": "app.kubernetes.io/name=web", "zone": zone}
            ),
        ).value
        for zone in ("us-east-1a", "us-east-1b", "us-east-1c")
    ]
    nowhere = probe.check(
        ctx, params=probe.parse_params({"namespace": "shop", "zone": "eu-west-1a"})
    )

    assert (payments.ok, payments.value) == (True, 2)
    assert sum(per_zone) == 3  # type: ignore[arg-type]
    assert not nowhere.ok and nowhere.value == 0
