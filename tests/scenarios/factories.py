"""Factories for scenario-language tests: fresh document texts, files and a fake catalog.

The catalog mirrors what the engine will register for the bundled library's actions and
probes, with small params models, so lint can be exercised without the engine.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pydantic

from scenarios import catalog, quantities

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: zone-drain
spec:
  description: Drain one zone's nodes.
  failureMode: availability-zone
  hypothesis: Checkout stays healthy.
  parameters:
    zone:
      type: string
      default: us-east-1a
    maxNodes:
      type: integer
      default: 2
    soak:
      type: duration
      default: 5m
  targets:
    zone-nodes:
      provider: kubernetes
      kind: node
      selector:
        labels:
          topology.kubernetes.io/zone: "{{ zone }}"
      blastRadius:
        max: "{{ maxNodes }}"
  steadyState:
    - name: checkout-healthy
      type: http
      with:
        url: http://127.0.0.1/healthz
  guardrails:
    environments: [sandbox]
    maxDuration: 30m
  steps:
    - name: drain
      action: kubernetes.nodes.drain
      target: zone-nodes
      with:
        timeout: 2m
    - name: soak
      wait: "{{ soak }}"
    - name: check
      probe: checkout-healthy
  objectives:
    rto: 15m
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: sandbox
spec:
  timeScale: 0.02
  kubernetes:
    kubeconfig: ./kubeconfig.yaml
  parameters:
    checkoutHealthUrl: http://127.0.0.1:8080/healthz
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: nightly
spec:
  scenario: zone-drain
  environment: sandbox
  parameters:
    zone: us-east-1b
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write `text` (dedented) to `folder/name` and return the path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(text: str, needle: str, *, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line of `text` containing `needle`."""
    seen = 0
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def replace(text: str, old: str, new: str) -> str:
    """`text` with exactly one `old` replaced by `new` (fails loudly when absent)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class DrainParams(_Params):
    timeout: quantities.Duration = quantities.Duration(120)
    respectPodDisruptionBudgets: bool = True
    ignoreDaemonSets: bool = True


class TaintParams(_Params):
    key: str
    value: str = ""
    effect: str = "NoSchedule"


class ScaleParams(_Params):
    replicas: int = pydantic.Field(ge=0)


class EgressParams(_Params):
    cidr: str
    port: int = pydantic.Field(ge=1, le=65535)


class ZoneParams(_Params):
    zone: str


class ReasonParams(_Params):
    """`people.mark-unavailable`: a reason, and which live access to revoke with the absence."""

    reason: str = ""
    revoke: list[Literal["kubernetes-rbac", "aws-iam"]] = []
    iamUsers: dict[str, str] = {}


class HttpParams(_Params):
    url: pydantic.AnyHttpUrl
    expectStatus: int = 200


class DeploymentAvailableParams(_Params):
    namespace: str
    name: str
    minAvailable: int = 1


class PodsReadyParams(_Params):
    namespace: str
    selector: str
    minReady: int = 1


class AlarmParams(_Params):
    alarmName: str
    expectState: str = "OK"


class QueryParams(_Params):
    query: str


def _action(
    name: str,
    *,
    kinds: set[str],
    params: type[pydantic.BaseModel] | None = None,
    mutating: bool = True,
    revertible: bool = True,
    destructive: bool = True,
) -> catalog.ActionInfo:
    return catalog.ActionInfo(
        name=name,
        mutating=mutating,
        revertible=revertible,
        destructive=destructive,
        params=params,
        target_kinds=frozenset(kinds),
    )


def fake_catalog() -> catalog.Catalog:
    """The actions and probes the bundled library uses, as the engine will describe them."""
    people = {"person"}
    return catalog.Catalog.of(
        actions=[
            _action("kubernetes.nodes.cordon", kinds={"node"}),
            _action("kubernetes.nodes.drain", kinds={"node"}, params=DrainParams),
            _action("kubernetes.nodes.taint", kinds={"node"}, params=TaintParams),
            _action("kubernetes.pods.delete", kinds={"pod", "deployment"}, revertible=False),
            _action("kubernetes.deployment.scale", kinds={"deployment"}, params=ScaleParams),
            _action(
                "kubernetes.network.deny-egress", kinds={"deployment", "pod"}, params=EgressParams
            ),
            _action("kubernetes.network.partition", kinds={"deployment", "pod"}),
            _action("kubernetes.rbac.revoke-subject", kinds=people | {"subject"}),
            _action("aws.network.isolate-subnets", kinds={"subnet"}),
            _action("aws.ec2.stop-instances", kinds={"instance"}),
            _action("aws.autoscaling.remove-zone", kinds={"autoscaling-group"}, params=ZoneParams),
            _action("aws.rds.failover", kinds={"db-instance"}, revertible=False),
            _action("aws.network.deny-egress", kinds={"security-group"}, params=EgressParams),
            _action("aws.iam.suspend-access", kinds=people | {"iam-user"}),
            _action(
                "people.analyse-absence",
                kinds=people,
                mutating=False,
                revertible=False,
                destructive=False,
            ),
            _action("people.mark-unavailable", kinds=people, params=ReasonParams),
            _action("test.nodes.replace", kinds={"node"}, revertible=False),
        ],
        probes=[
            catalog.ProbeInfo("http", HttpParams),
            catalog.ProbeInfo("kubernetes.deployment-available", DeploymentAvailableParams),
            catalog.ProbeInfo("kubernetes.pods-ready", PodsReadyParams),
            catalog.ProbeInfo("prometheus.query", QueryParams),
            catalog.ProbeInfo("aws.cloudwatch-alarm", AlarmParams),
        ],
    )
