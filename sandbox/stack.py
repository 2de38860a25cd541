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

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    @property
    def environment(self) -> Path:
        return self.state_dir / ENVIRONMENT_FILE

    @property
    def kill_switch(self) -> Path:
        return self.state_dir / KILL_SWITCH_FILE

    def to_json(self) -> dict[str, Any]:
        """The `sandbox.json` document."""
        return {
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
            "parameters": parameters,
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
    ) -> None:
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
        )

    def wait_settled(self, *, timeout_s: float = 30.0) -> bool:
        """Wait until every Deployment has all its replicas Ready (True) or time runs out."""
        cluster = self.store
        if cluster is None:
            raise errors.SandboxNotStarted("Sandbox.wait_settled: call start() first")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            deployments = cluster.list(resource=resources.DEPLOYMENTS)
            if all(_deployment_settled(d) for d in deployments):
                return True
            time.sleep(0.05)
        return False

    def _kube_faults(self) -> server.FaultConfig:
        return server.FaultConfig(latency_s=self._kube_latency_s)

    def _write_state_files(self, info: SandboxInfo) -> None:
        env_text = yaml.safe_dump(environment_document(info), sort_keys=False)
        _write_atomically(info.environment, env_text)
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
