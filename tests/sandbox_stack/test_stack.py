"""The composed sandbox: state-dir files, reachability of every part, clean stop."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from sandbox import aws, errors, stack


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "", parts.port or 80)) == 0


def test_state_dir_holds_kubeconfig_environment_and_sandbox_json(
    running_sandbox: stack.Sandbox,
) -> None:
    info = running_sandbox.info
    state = info.state_dir
    assert (state / "kubeconfig").is_file()

    written = json.loads((state / "sandbox.json").read_text())
    assert written["kubernetes"]["server"] == info.kube_server
    assert written["aws"] == {"endpoint_url": info.aws_endpoint_url, "region": "us-east-1"}
    assert set(written["health"]) == {"web", "checkout", "payments", "inventory"}
    assert written["prometheus"]["url"].endswith("/prometheus")

    env = yaml.safe_load((state / "environment.yaml").read_text())
    assert env["apiVersion"] == "stormdrill.dev/v1"
    assert env["kind"] == "Environment"
    assert env["metadata"] == {"name": "sandbox"}
    spec = env["spec"]
    assert spec["protected"] is False
    assert spec["timeScale"] == 0.02
    assert spec["kubernetes"] == {
        "kubeconfig": "kubeconfig",
        "context": "sandbox",
        "requireNamespaceOptIn": True,
        "allowClusterScope": True,
    }
    assert spec["aws"] == {
        "region": "us-east-1",
        "endpointUrl": info.aws_endpoint_url,
        "protectedPrincipals": ["frank"],
    }
    assert spec["prometheus"] == {"url": written["prometheus"]["url"]}
    assert spec["cmdb"]["backstage"] == [str(stack.catalog_path().parent)]
    assert Path(spec["cmdb"]["backstage"][0]).is_absolute()
    assert spec["orchestrator"] == {
        "namespace": "stormdrill",
        "podName": "stormdrill-0",
        "nodeName": "node-us-east-1c-2",
    }
    assert spec["killSwitchFile"] == str(state / "killswitch")
    assert not (state / "killswitch").exists()
    assert spec["parameters"] == {
        "webHealthUrl": written["health"]["web"],
        "checkoutHealthUrl": written["health"]["checkout"],
        "paymentsHealthUrl": written["health"]["payments"],
        "inventoryHealthUrl": written["health"]["inventory"],
    }


def test_kubernetes_and_aws_halves_describe_the_same_zones(
    running_sandbox: stack.Sandbox, kube_api: client.ApiClient
) -> None:
    nodes = client.CoreV1Api(kube_api).list_node().items
    node_zones = {
        (n.metadata.labels or {})["topology.kubernetes.io/zone"] for n in nodes if n.metadata
    }
    ec2 = aws.session().client("ec2", endpoint_url=running_sandbox.info.aws_endpoint_url)
    subnets = ec2.describe_subnets(Filters=[{"Name": "tag:stormdrill:allow", "Values": ["true"]}])
    assert node_zones == {s["AvailabilityZone"] for s in subnets["Subnets"]} == set(aws.ZONES)


def test_stop_removes_sandbox_json_and_closes_every_port(tmp_path: Path) -> None:
    sandbox = stack.Sandbox(tmp_path / "state")
    info = sandbox.start()
    urls = [info.kube_server, info.aws_endpoint_url, info.workloads_url]
    assert all(_port_open(url) for url in urls)

    sandbox.stop()
    sandbox.stop()  # idempotent

    assert not (info.state_dir / "sandbox.json").exists()
    assert (info.state_dir / "environment.yaml").exists()
    assert not any(_port_open(url) for url in urls)
    with pytest.raises(errors.SandboxNotStarted):
        _ = sandbox.info


def test_written_environment_loads_with_the_scenario_language(
    running_sandbox: stack.Sandbox,
) -> None:
    from scenarios import loading  # the scenario language is built in parallel; import late

    loaded = loading.load_environment(running_sandbox.info.environment)

    spec = loaded.model.spec
    assert loaded.name == "sandbox"
    assert spec.kubernetes is not None
    assert spec.kubernetes.kubeconfig == running_sandbox.info.kubeconfig
    assert spec.aws is not None
    assert spec.aws.endpoint_url == running_sandbox.info.aws_endpoint_url
    assert spec.aws.protected_principals == ("frank",)
    assert spec.kill_switch_file == running_sandbox.info.kill_switch
    assert spec.parameters["checkoutHealthUrl"] == running_sandbox.info.health["checkout"]
