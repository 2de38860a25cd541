"""The opt-in second region: region B's cluster and AWS, Route 53 failover, the global entry."""

from __future__ import annotations

import dataclasses
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client, config

from sandbox import aws, errors, region, stack
from scenarios import loading
from tests.sandbox_stack import support


@dataclasses.dataclass(frozen=True)
class Reply:
    code: int
    region_header: str | None
    body: dict[str, Any]


def _get(url: str) -> Reply:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return Reply(answer.status, answer.headers.get(region.REGION_HEADER), json.load(answer))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers.get(region.REGION_HEADER), json.loads(exc.read()))


def _kube(kubeconfig: Path, context: str) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context
    )
    return api


def _route53(sandbox: stack.Sandbox) -> Any:
    return aws.session().client("route53", endpoint_url=sandbox.info.aws_endpoint_url)


def _two(sandbox: stack.Sandbox) -> region.TwoRegions:
    two = sandbox.info.regions
    assert two is not None
    return two


def _labels(obj: client.V1Node) -> dict[str, str]:
    assert obj.metadata is not None and obj.metadata.labels is not None
    return dict(obj.metadata.labels)


def _name(obj: client.V1Deployment) -> str:
    assert obj.metadata is not None and obj.metadata.name is not None
    return str(obj.metadata.name)


def _ready(deployment: client.V1Deployment) -> int | None:
    assert deployment.status is not None
    return deployment.status.ready_replicas


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "", parts.port or 80)) == 0


@pytest.fixture
def two_regions(tmp_path: Path) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path / "state", controller_interval_s=0.05, regions=2) as sandbox:
        yield sandbox


def test_both_api_servers_serve_the_shop_on_their_own_regions_nodes(
    two_regions: stack.Sandbox,
) -> None:
    clusters = {c.region: c for c in _two(two_regions).clusters}
    assert clusters["us-west-2"].server != clusters["us-east-1"].server
    for name, zones in (("us-east-1", aws.ZONES), ("us-west-2", region.ZONES_B)):
        cluster = clusters[name]
        with _kube(cluster.kubeconfig, cluster.context) as api:
            labels = [_labels(n) for n in client.CoreV1Api(api).list_node().items]
            assert {n["topology.kubernetes.io/region"] for n in labels} == {name}
            assert {n["topology.kubernetes.io/zone"] for n in labels} == set(zones)
            assert len(labels) == 6
            apps = client.AppsV1Api(api)
            deployments = apps.list_namespaced_deployment("shop").items
            assert {_name(d) for d in deployments} == {
                "web",
                "checkout",
                "payments",
                "inventory",
            }
    assert two_regions.wait_settled(timeout_s=20)

    # Region B's controller runs: scaling its checkout converges, region A's stays at 3.
    b = clusters["us-west-2"]
    with _kube(b.kubeconfig, b.context) as api:
        apps = client.AppsV1Api(api)
        apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 1}})
        support.eventually(
            lambda: _ready(apps.read_namespaced_deployment("checkout", "shop")),
            lambda ready: ready == 1,
        )
        orchestrator = client.CoreV1Api(api).list_namespaced_pod("stormdrill").items
        assert orchestrator == []
    a = clusters["us-east-1"]
    with _kube(a.kubeconfig, a.context) as api:
        checkout = client.AppsV1Api(api).read_namespaced_deployment("checkout", "shop")
        assert checkout.spec.replicas == 3


def test_region_b_network_failover_records_health_checks_and_global_database_exist_in_moto(
    two_regions: stack.Sandbox,
) -> None:
    two = _two(two_regions)
    endpoint = two_regions.info.aws_endpoint_url
    ec2_b = aws.session(region="us-west-2").client("ec2", endpoint_url=endpoint)
    vpcs = ec2_b.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["shop"]}])["Vpcs"]
    assert [(v["VpcId"], v["CidrBlock"]) for v in vpcs] == [(two.network_b.vpc_id, "10.1.0.0/16")]
    subnets = ec2_b.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])
    by_zone = {s["AvailabilityZone"]: s for s in subnets["Subnets"]}
    assert {z: s["CidrBlock"] for z, s in by_zone.items()} == region.SUBNET_CIDRS_B
    for zone, subnet in by_zone.items():
        tags = {t["Key"]: t["Value"] for t in subnet["Tags"]}
        assert tags == {"Name": f"shop-{zone}", "stormdrill:allow": "true"}
    ec2_a = aws.session(region="us-east-1").client("ec2", endpoint_url=endpoint)
    shop_a = ec2_a.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["shop"]}])["Vpcs"]
    assert [v["CidrBlock"] for v in shop_a] == ["10.0.0.0/16"]

    r53 = _route53(two_regions)
    checks = two.failover.health_check_ids
    sets = r53.list_resource_record_sets(HostedZoneId=two.failover.hosted_zone_id)
    failover = {
        s["Failover"]: s for s in sets["ResourceRecordSets"] if s["Name"] == region.GLOBAL_RECORD
    }
    assert failover["PRIMARY"]["ResourceRecords"] == [{"Value": region.regional_name("us-east-1")}]
    assert failover["PRIMARY"]["HealthCheckId"] == checks["us-east-1"]
    assert failover["SECONDARY"]["ResourceRecords"] == [
        {"Value": region.regional_name("us-west-2")}
    ]
    assert failover["SECONDARY"]["HealthCheckId"] == checks["us-west-2"]
    entry_port = urlsplit(two.global_url).port
    for name, check_id in checks.items():
        cfg = r53.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
        assert (cfg["Type"], cfg["IPAddress"], cfg["Port"]) == ("HTTP", "127.0.0.1", entry_port)
        assert cfg["ResourcePath"] == f"/regions/{name}/healthz"
        assert cfg["Inverted"] is False
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id)
        pairs = {t["Key"]: t["Value"] for t in tags["ResourceTagSet"]["Tags"]}
        assert pairs == {"Name": f"shop-{name}", "region": name, "stormdrill:allow": "true"}

    rds = aws.session().client("rds", endpoint_url=endpoint)
    (global_cluster,) = rds.describe_global_clusters()["GlobalClusters"]
    assert global_cluster["GlobalClusterIdentifier"] == "payments-global"
    members = sorted(m["DBClusterArn"] for m in global_cluster["GlobalClusterMembers"])
    assert [arn.split(":")[3] for arn in members] == ["us-east-1", "us-west-2"]


def test_global_entry_point_moves_to_region_b_while_a_health_check_is_inverted_and_back(
    two_regions: stack.Sandbox,
) -> None:
    two = _two(two_regions)
    first = _get(two.global_health_url)
    assert (first.code, first.region_header, first.body["region"]) == (
        200,
        "us-east-1",
        "us-east-1",
    )
    assert first.body["record"] == "PRIMARY"
    page = _get(two.global_shop_url)
    assert (page.code, page.region_header, page.body["page"]) == (200, "us-east-1", "shop")

    r53 = _route53(two_regions)
    primary_check = two.failover.health_check_ids["us-east-1"]
    r53.update_health_check(HealthCheckId=primary_check, Inverted=True)
    failed_over = _get(two.global_health_url)
    assert (failed_over.code, failed_over.region_header) == (200, "us-west-2")
    assert failed_over.body["region"] == "us-west-2"
    assert failed_over.body["record"] == "SECONDARY"
    assert failed_over.body["failover"] == [f"PRIMARY: health check {primary_check} is inverted"]
    page = _get(two.global_shop_url)
    assert (page.region_header, page.body["region"]) == ("us-west-2", "us-west-2")

    r53.update_health_check(HealthCheckId=primary_check, Inverted=False)
    back = _get(two.global_health_url)
    assert (back.code, back.region_header, back.body["region"]) == (200, "us-east-1", "us-east-1")

    missing = _get(f"{two.global_url}/global/nope")
    assert (missing.code, missing.region_header) == (404, None)
    assert "/global/healthz" in missing.body["error"]


def test_global_entry_point_moves_to_region_b_when_region_a_web_is_scaled_to_zero(
    two_regions: stack.Sandbox,
) -> None:
    two = _two(two_regions)
    with _kube(two_regions.info.kubeconfig, stack.CONTEXT) as api:
        client.AppsV1Api(api).patch_namespaced_deployment_scale(
            "web", "shop", {"spec": {"replicas": 0}}
        )
    moved = support.eventually(
        lambda: _get(two.global_health_url), lambda reply: reply.region_header == "us-west-2"
    )
    assert (moved.code, moved.body["region"], moved.body["record"]) == (
        200,
        "us-west-2",
        "SECONDARY",
    )
    regional_a = _get(f"{two.global_url}/regions/us-east-1/healthz")
    assert (regional_a.code, regional_a.body["status"]) == (503, "degraded")
    assert regional_a.body["reasons"] == ["no Ready web pod in namespace shop of us-east-1"]

    # Both regions failing: like Route 53, the PRIMARY answers, and here it has no web.
    _route53(two_regions).update_health_check(
        HealthCheckId=two.failover.health_check_ids["us-west-2"], Inverted=True
    )
    down = _get(two.global_health_url)
    assert (down.code, down.region_header, down.body["record"]) == (503, "us-east-1", "PRIMARY")
    assert down.body["failover"][-1].startswith("every failover record is unhealthy")


def test_two_region_state_dir_keeps_region_a_environment_and_adds_region_b_files(
    two_regions: stack.Sandbox,
) -> None:
    info = two_regions.info
    two = _two(two_regions)
    env = yaml.safe_load(info.environment.read_text())
    assert env["spec"]["kubernetes"] == {
        "kubeconfig": "kubeconfig",
        "context": "sandbox",
        "requireNamespaceOptIn": True,
        "allowClusterScope": True,
    }
    assert env["spec"]["parameters"]["globalHealthUrl"] == two.global_health_url
    assert (
        env["spec"]["parameters"]["primaryHealthCheckId"]
        == (two.failover.health_check_ids["us-east-1"])
    )
    assert loading.load_environment(info.environment).model.metadata.name == "sandbox"
    region_b = loading.load_environment(info.region_b_environment).model
    assert region_b.metadata.name == "sandbox-us-west-2"
    assert region_b.spec.kubernetes is not None
    assert (region_b.spec.kubernetes.kubeconfig, region_b.spec.kubernetes.context) == (
        info.state_dir / "kubeconfig-us-west-2",
        "sandbox-us-west-2",
    )
    assert region_b.spec.aws is not None and region_b.spec.aws.region == "us-west-2"

    written = json.loads((info.state_dir / "sandbox.json").read_text())
    assert written["kubernetes"]["server"] == info.kube_server
    assert written["kubernetes"]["clusters"] == [
        {
            "name": "shop-us-east-1",
            "region": "us-east-1",
            "kubeconfig": str(info.kubeconfig),
            "context": "sandbox",
            "server": info.kube_server,
        },
        {
            "name": "shop-us-west-2",
            "region": "us-west-2",
            "kubeconfig": str(info.state_dir / "kubeconfig-us-west-2"),
            "context": "sandbox-us-west-2",
            "server": two.clusters[1].server,
        },
    ]
    assert written["global"]["healthz"] == two.global_health_url
    assert written["route53"]["healthChecks"] == dict(two.failover.health_check_ids)

    two_regions.stop()
    assert not _port_open(two.global_url)
    assert not _port_open(two.clusters[1].server)


def test_one_region_sandbox_starts_nothing_of_the_second_region(tmp_path: Path) -> None:
    with stack.Sandbox(tmp_path / "state") as sandbox:
        info = sandbox.info
        assert info.regions is None
        assert (sandbox.store_b, sandbox.kube_b, sandbox.global_entry) == (None, None, None)
        assert not (info.state_dir / "kubeconfig-us-west-2").exists()
        assert not info.region_b_environment.exists()
        written = json.loads((info.state_dir / "sandbox.json").read_text())
        assert "clusters" not in written["kubernetes"]
        assert not {"global", "route53", "rds", "regionB", "environments"} & set(written)
        env = yaml.safe_load(info.environment.read_text())
        assert not any(name.startswith("global") for name in env["spec"]["parameters"])

        endpoint = info.aws_endpoint_url
        ec2_b = aws.session(region="us-west-2").client("ec2", endpoint_url=endpoint)
        assert ec2_b.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["shop"]}])["Vpcs"] == []
        assert _route53(sandbox).list_hosted_zones()["HostedZones"] == []
        assert _route53(sandbox).list_health_checks()["HealthChecks"] == []
        rds = aws.session().client("rds", endpoint_url=endpoint)
        assert rds.describe_global_clusters()["GlobalClusters"] == []


@pytest.mark.parametrize("regions", [0, 3])
def test_sandbox_refuses_a_region_count_it_cannot_simulate(tmp_path: Path, regions: int) -> None:
    with pytest.raises(errors.SandboxError, match="pass regions=1 or regions=2"):
        stack.Sandbox(tmp_path / "state", regions=regions)
    assert not (tmp_path / "state").exists()
