"""The whole sandbox: Kubernetes API + controller, moto, simulated workloads, and its state dir.

`Sandbox(state_dir)` starts the loopback Kubernetes API server over a seeded shop with its
controller loop, a seeded moto server and the workload server, then writes into `state_dir`:
`kubeconfig`, `environment.yaml` (a Stormdrill Environment for the sandbox) and, last,
`sandbox.json` (where everything listens). Invariants:

- `sandbox.json` exists only while the sandbox is up: it is written atomically after
  everything else has started and removed first on `stop()`; its presence means "ready".
- `stop()` stops every part that was started, in reverse order, even if one of them fails;
  it is safe to call twice.
- moto's state is process-wide: starting a `Sandbox` resets every moto in this process.
- `regions=1` (the default) is the one-region sandbox and nothing more; `regions=2` adds region
  B (`sandbox.region`): a second API server with its controller, its AWS seed, Route 53
  failover, an Aurora global cluster and the global entry point, plus
  `kubeconfig-us-west-2` and `region-b.environment.yaml` in the state dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import yaml

from sandbox import aws, errors, workloads
from sandbox import region as two_regions
from sandbox.kubernetes import controller, resources, seed, server, store

log = logging.getLogger(__name__)

CONTEXT: Final = "sandbox"
ENVIRONMENT_NAME: Final = "sandbox"
TIME_SCALE: Final = 0.02
ORCHESTRATOR_NAMESPACE: Final = "stormdrill"
ORCHESTRATOR_POD: Final = "stormdrill-0"
ORCHESTRATOR_NODE: Final = "node-us-east-1c-2"
KUBECONFIG_FILE: Final = "kubeconfig"
ENVIRONMENT_FILE: Final = "environment.yaml"
INFO_FILE: Final = "sandbox.json"
KILL_SWITCH_FILE: Final = "killswitch"
REGION_B_ENVIRONMENT_FILE: Final = "region-b.environment.yaml"
REGION_B_ENVIRONMENT_NAME: Final = "sandbox-us-west-2"


def catalog_path() -> Path:
    """The sample CMDB (Backstage descriptors) describing the sandbox world."""
    return (Path(__file__).parent / "data" / "catalog-info.yaml").resolve()


@dataclasses.dataclass(frozen=True)
class SandboxInfo:
    """Where the running sandbox listens; the content of `sandbox.json`."""

    state_dir: Path
    kube_server: str
    aws_endpoint_url: str
    region: str
    health: Mapping[str, str]
    prometheus_url: str
    workloads_url: str
    regions: two_regions.TwoRegions | None = None
    """Region B, Route 53 and the global entry point; only with `Sandbox(regions=2)`."""

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    @property
    def environment(self) -> Path:
        return self.state_dir / ENVIRONMENT_FILE

    @property
    def kill_switch(self) -> Path:
        return self.state_dir / KILL_SWITCH_FILE

    @property
    def region_b_environment(self) -> Path:
        return self.state_dir / REGION_B_ENVIRONMENT_FILE

    def to_json(self) -> dict[str, Any]:
        """The `sandbox.json` document (with `regions=2`: clusters, global, route53, …)."""
        document: dict[str, Any] = {
            "kubernetes": {
                "server": self.kube_server,
                "kubeconfig": str(self.kubeconfig),
                "context": CONTEXT,
            },
            "aws": {"endpoint_url": self.aws_endpoint_url, "region": self.region},
            "health": dict(self.health),
            "prometheus": {"url": self.prometheus_url},
            "workloads": {"url": self.workloads_url},
            "environment": str(self.environment),
            "pid": os.getpid(),
        }
        if self.regions is not None:
            extra = self.regions.to_json()
            document["kubernetes"]["clusters"] = extra.pop("clusters")
            document["environments"] = {two_regions.REGION_B: str(self.region_b_environment)}
            document.update(extra)
        return document


def environment_document(info: SandboxInfo) -> dict[str, Any]:
    """The Stormdrill Environment (apiVersion stormdrill.dev/v1) that reaches this sandbox."""
    parameters = {f"{service}HealthUrl": url for service, url in info.health.items()}
    return {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Environment",
        "metadata": {"name": ENVIRONMENT_NAME},
        "spec": {
            "protected": False,
            "timeScale": TIME_SCALE,
            "kubernetes": {
                "kubeconfig": KUBECONFIG_FILE,
                "context": CONTEXT,
                "requireNamespaceOptIn": True,
                "allowClusterScope": True,
            },
            "aws": {
                "region": info.region,
                "endpointUrl": info.aws_endpoint_url,
                "protectedPrincipals": list(aws.PROTECTED_PRINCIPALS),
            },
            "prometheus": {"url": info.prometheus_url},
            "cmdb": {"backstage": [str(catalog_path().parent)]},
            "orchestrator": {
                "namespace": ORCHESTRATOR_NAMESPACE,
                "podName": ORCHESTRATOR_POD,
                "nodeName": ORCHESTRATOR_NODE,
            },
            "killSwitchFile": str(info.kill_switch),
            "parameters": {**parameters, **_global_parameters(info)},
        },
    }


def _global_parameters(info: SandboxInfo) -> dict[str, str]:
    """With two regions: the global entry point's URLs and each region's health check id."""
    if info.regions is None:
        return {}
    checks = info.regions.failover.health_check_ids
    return {
        "globalHealthUrl": info.regions.global_health_url,
        "globalShopUrl": info.regions.global_shop_url,
        "primaryHealthCheckId": checks[two_regions.REGION_A],
        "secondaryHealthCheckId": checks[two_regions.REGION_B],
    }


def region_b_environment_document(info: SandboxInfo) -> dict[str, Any]:
    """An Environment reaching region B alone (its cluster, `us-west-2` on the same moto).

    The Environment model has no `kubernetes.clusters` yet (unknown fields fail validation),
    so the second cluster gets its own file; `sandbox.json` lists both clusters.
    """
    if info.regions is None:
        raise errors.SandboxError("region_b_environment_document: the sandbox has one region")
    return {
        "apiVersion": "stormdrill.dev/v1",
        "kind": "Environment",
        "metadata": {"name": REGION_B_ENVIRONMENT_NAME},
        "spec": {
            "protected": False,
            "timeScale": TIME_SCALE,
            "kubernetes": {
                "kubeconfig": two_regions.KUBECONFIG_B,
                "context": two_regions.CONTEXT_B,
                "requireNamespaceOptIn": True,
                "allowClusterScope": True,
            },
            "aws": {
                "region": two_regions.REGION_B,
                "endpointUrl": info.aws_endpoint_url,
                "protectedPrincipals": list(aws.PROTECTED_PRINCIPALS),
            },
            "cmdb": {"backstage": [str(catalog_path().parent)]},
            "killSwitchFile": str(info.kill_switch),
            "parameters": _global_parameters(info),
        },
    }


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _deployment_settled(deployment: Mapping[str, Any]) -> bool:
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("readyReplicas", 0) == wanted
        and status.get("updatedReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )


class Sandbox:
    """The running sandbox; use as a context manager or call `start()` / `stop()`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        kube_latency_s: float = 0.0,
        controller_interval_s: float = 0.2,
        host: str = "127.0.0.1",
        regions: int = 1,
    ) -> None:
        if regions not in (1, 2):
            raise errors.SandboxError(
                f"Sandbox(regions={regions}): the sandbox simulates 1 region ({aws.REGION}) or"
                f" 2 ({aws.REGION} and {two_regions.REGION_B}); pass regions=1 or regions=2"
            )
        self.regions = regions
        self.state_dir = Path(state_dir).resolve()
        self._kube_latency_s = kube_latency_s
        self._controller_interval_s = controller_interval_s
        self._host = host
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._info: SandboxInfo | None = None
        # The parts, for tests that reach inside (e.g. `sandbox.kube.faults.error_rate = 0.5`).
        self.store: store.ClusterStore | None = None
        self.kube: server.KubeApiServer | None = None
        self.moto: aws.MotoSandbox | None = None
        self.workloads: workloads.WorkloadServer | None = None
        self.aws_seed: aws.AwsSeed | None = None
        # Region B's parts, only with regions=2 (None otherwise).
        self.store_b: store.ClusterStore | None = None
        self.kube_b: server.KubeApiServer | None = None
        self.network_b: two_regions.RegionNetwork | None = None
        self.failover: two_regions.Failover | None = None
        self.global_entry: two_regions.GlobalEntryPoint | None = None

    @property
    def info(self) -> SandboxInfo:
        """Where everything listens (only while started)."""
        if self._info is None:
            raise errors.SandboxNotStarted("Sandbox.info: call start() (or enter the `with`) first")
        return self._info

    def start(self) -> SandboxInfo:
        """Start every part, seed it and write the state dir; on failure stop what started."""
        if self._info is not None:
            return self._info
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / INFO_FILE).unlink(missing_ok=True)
        if self.regions == 1:
            (self.state_dir / REGION_B_ENVIRONMENT_FILE).unlink(missing_ok=True)
        try:
            self._info = self._start_parts()
            self._write_state_files(self._info)
        except BaseException:
            self.stop()
            raise
        log.info("sandbox up; state in %s", self.state_dir)
        return self._info

    def _start_parts(self) -> SandboxInfo:
        cluster = store.ClusterStore()
        seed.seed_shop(cluster)
        self.store = cluster

        kube = server.KubeApiServer(
            store=cluster, host=self._host, port=0, faults=self._kube_faults()
        )
        kube.start()
        self.kube = kube
        self._stops.append(("kubernetes API server", kube.stop))
        kube.write_kubeconfig(self.state_dir / KUBECONFIG_FILE, context=CONTEXT)

        loop = controller.Controller(cluster, interval_s=self._controller_interval_s)
        loop.start()
        self._stops.append(("kubernetes controller", loop.stop))

        moto = aws.MotoSandbox(host=self._host, port=0)
        moto.start()
        self.moto = moto
        self._stops.append(("moto", moto.stop))
        moto.reset()
        self.aws_seed = aws.seed_shop_aws(endpoint_url=moto.endpoint_url, region=aws.REGION)

        shop = workloads.WorkloadServer(cluster, host=self._host, port=0)
        shop.start()
        self.workloads = shop
        self._stops.append(("workloads", shop.stop))

        return SandboxInfo(
            state_dir=self.state_dir,
            kube_server=str(kube.url),
            aws_endpoint_url=moto.endpoint_url,
            region=aws.REGION,
            health={service: shop.health_url(service) for service in workloads.SERVICES},
            prometheus_url=shop.prometheus_url,
            workloads_url=shop.url,
            regions=self._start_region_b(kube, moto) if self.regions == 2 else None,
        )

    def _start_region_b(
        self, kube_a: server.KubeApiServer, moto: aws.MotoSandbox
    ) -> two_regions.TwoRegions:
        cluster = store.ClusterStore()
        two_regions.seed_cluster(cluster, region=two_regions.REGION_B, zones=two_regions.ZONES_B)
        self.store_b = cluster
        kube = server.KubeApiServer(
            store=cluster, host=self._host, port=0, faults=self._kube_faults()
        )
        kube.start()
        self.kube_b = kube
        self._stops.append((f"kubernetes API server ({two_regions.REGION_B})", kube.stop))
        kubeconfig_b = kube.write_kubeconfig(
            self.state_dir / two_regions.KUBECONFIG_B, context=two_regions.CONTEXT_B
        )
        loop = controller.Controller(cluster, interval_s=self._controller_interval_s)
        loop.start()
        self._stops.append((f"kubernetes controller ({two_regions.REGION_B})", loop.stop))

        self.network_b = two_regions.seed_region_b_aws(endpoint_url=moto.endpoint_url)
        entry = two_regions.GlobalEntryPoint(
            endpoint_url=moto.endpoint_url,
            apis={two_regions.REGION_A: str(kube_a.url), two_regions.REGION_B: str(kube.url)},
            host=self._host,
        )
        entry.start()
        self.global_entry = entry
        self._stops.append(("global entry point", entry.stop))
        self.failover = two_regions.seed_failover(
            endpoint_url=moto.endpoint_url, entry_host=self._host, entry_port=entry.port
        )
        clusters = (
            two_regions.Cluster(
                name=two_regions.CLUSTER_NAMES[two_regions.REGION_A],
                region=two_regions.REGION_A,
                kubeconfig=self.state_dir / KUBECONFIG_FILE,
                context=CONTEXT,
                server=str(kube_a.url),
            ),
            two_regions.Cluster(
                name=two_regions.CLUSTER_NAMES[two_regions.REGION_B],
                region=two_regions.REGION_B,
                kubeconfig=kubeconfig_b,
                context=two_regions.CONTEXT_B,
                server=str(kube.url),
            ),
        )
        return two_regions.TwoRegions(
            clusters=clusters,
            global_url=entry.url,
            failover=self.failover,
            network_b=self.network_b,
        )

    def wait_settled(self, *, timeout_s: float = 30.0) -> bool:
        """Wait until every Deployment (of each region) has all replicas Ready, or time runs out."""
        if self.store is None:
            raise errors.SandboxNotStarted("Sandbox.wait_settled: call start() first")
        clusters = [c for c in (self.store, self.store_b) if c is not None]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            deployments = [d for c in clusters for d in c.list(resource=resources.DEPLOYMENTS)]
            if all(_deployment_settled(d) for d in deployments):
                return True
            time.sleep(0.05)
        return False

    def _kube_faults(self) -> server.FaultConfig:
        return server.FaultConfig(latency_s=self._kube_latency_s)

    def _write_state_files(self, info: SandboxInfo) -> None:
        env_text = yaml.safe_dump(environment_document(info), sort_keys=False)
        _write_atomically(info.environment, env_text)
        if info.regions is not None:
            region_b_text = yaml.safe_dump(region_b_environment_document(info), sort_keys=False)
            _write_atomically(info.region_b_environment, region_b_text)
        _write_atomically(self.state_dir / INFO_FILE, json.dumps(info.to_json(), indent=2) + "\n")

    def stop(self) -> None:
        """Remove `sandbox.json`, then stop every started part newest first."""
        with contextlib.suppress(OSError):
            (self.state_dir / INFO_FILE).unlink(missing_ok=True)
        failures: list[str] = []
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:
                log.exception("sandbox: stopping %s failed; continuing with the rest", name)
                failures.append(f"{name}: {exc}")
        self._info = None
        if failures:
            raise errors.SandboxError(
                "sandbox: some parts did not stop cleanly ("
                + "; ".join(failures)
                + "); their ports may stay open until the process exits"
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
