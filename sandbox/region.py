"""Second region: region B's cluster and AWS seed, Route 53 failover, and the global entry point.

Only `Sandbox(regions=2)` uses this module. Region A is today's sandbox (`us-east-1`); region B
(`us-west-2`) gets its own Kubernetes store seeded with the shop (no orchestrator: Stormdrill
runs in region A), a VPC with three subnets, and an Aurora global cluster spanning both
regions. Route 53 holds the shop's global name as a PRIMARY/SECONDARY failover pair, each
record guarded by an HTTP health check of its region's entry.

`GlobalEntryPoint` is the shop's global front door on loopback. Invariants:

- It keeps no routing state: every request reads the failover records and health checks from
  moto and the web pods from each region's Kubernetes API server, so a drill that inverts a
  health check (`UpdateHealthCheck Inverted=true`) or scales web away has a real effect.
- moto never runs health checks, so the entry point is the health checker as well: a check
  passes when its configured endpoint (`IPAddress:Port` + `ResourcePath`) answers 2xx/3xx;
  an inverted check counts as failed whatever the endpoint answers; a record without a check
  counts as healthy. No request interval or failure threshold: each request measures afresh.
- Like Route 53, when every failover record's check fails it answers from the PRIMARY.
- Every answer from a region carries it: header `X-Stormdrill-Region` and JSON field `region`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import http.server
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore import exceptions as boto_errors

from sandbox import aws, errors
from sandbox.kubernetes import controller, resources, seed, store

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef, TagTypeDef
    from mypy_boto3_rds import RDSClient

log = logging.getLogger(__name__)

REGION_A: Final = aws.REGION
REGION_B: Final = "us-west-2"
ZONES_B: Final = ("us-west-2a", "us-west-2b", "us-west-2c")
VPC_CIDR_B: Final = "10.1.0.0/16"
SUBNET_CIDRS_B: Final = {
    "us-west-2a": "10.1.1.0/24",
    "us-west-2b": "10.1.2.0/24",
    "us-west-2c": "10.1.3.0/24",
}
CLUSTER_NAMES: Final = {REGION_A: "shop-us-east-1", REGION_B: "shop-us-west-2"}
CONTEXT_B: Final = "sandbox-us-west-2"
KUBECONFIG_B: Final = "kubeconfig-us-west-2"
HOSTED_ZONE: Final = "shop.sandbox.stormdrill.test."
GLOBAL_RECORD: Final = f"www.{HOSTED_ZONE}"
GLOBAL_CLUSTER_ID: Final = "payments-global"
AURORA_CLUSTER_IDS: Final = {REGION_A: "payments-aurora", REGION_B: "payments-aurora-us-west-2"}
REGION_HEADER: Final = "X-Stormdrill-Region"
REGION_LABEL: Final = "topology.kubernetes.io/region"
WEB_SELECTOR: Final = f"{seed.NAME_LABEL}=web"
_PROBE_TIMEOUT_S: Final = 5.0
# What region B's cluster gets from region A's seed (not the orchestrator's StatefulSet).
_CLONED: Final = (
    resources.CLUSTER_ROLES,
    resources.CLUSTER_ROLE_BINDINGS,
    resources.ROLE_BINDINGS,
    resources.SERVICES,
    resources.POD_DISRUPTION_BUDGETS,
    resources.DAEMON_SETS,
    resources.DEPLOYMENTS,
)
_NAMESPACES: Final = ("default", "kube-system", seed.SHOP_NAMESPACE)


class FailoverRole(enum.StrEnum):
    """Route 53's `Failover` value of a record."""

    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One sandbox Kubernetes cluster: the shape of an Environment's `kubernetes.clusters[]`."""

    name: str
    region: str
    kubeconfig: Path
    context: str
    server: str


@dataclasses.dataclass(frozen=True)
class RegionNetwork:
    """Region B's VPC, subnets (zone → id), default network ACL and DB subnet group."""

    region: str
    vpc_id: str
    subnet_ids: Mapping[str, str]
    default_network_acl_id: str
    db_subnet_group: str


@dataclasses.dataclass(frozen=True)
class Failover:
    """The Route 53 and Aurora objects that make the shop two-region (region → id)."""

    hosted_zone_id: str
    record_name: str
    health_check_ids: Mapping[str, str]
    global_cluster_id: str
    aurora_cluster_ids: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class TwoRegions:
    """What `Sandbox(regions=2)` adds to `SandboxInfo`."""

    clusters: tuple[Cluster, ...]
    global_url: str
    failover: Failover
    network_b: RegionNetwork

    @property
    def global_health_url(self) -> str:
        return f"{self.global_url}/global/healthz"

    @property
    def global_shop_url(self) -> str:
        return f"{self.global_url}/global/shop"

    def to_json(self) -> dict[str, Any]:
        """The `sandbox.json` fragment (clusters, global entry point, Route 53, region B)."""
        return {
            "clusters": [
                {
                    "name": c.name,
                    "region": c.region,
                    "kubeconfig": str(c.kubeconfig),
                    "context": c.context,
                    "server": c.server,
                }
                for c in self.clusters
            ],
            "global": {
                "url": self.global_url,
                "healthz": self.global_health_url,
                "shop": self.global_shop_url,
            },
            "route53": {
                "hostedZoneId": self.failover.hosted_zone_id,
                "record": self.failover.record_name,
                "healthChecks": dict(self.failover.health_check_ids),
            },
            "rds": {
                "globalCluster": self.failover.global_cluster_id,
                "clusters": dict(self.failover.aurora_cluster_ids),
            },
            "regionB": {
                "region": self.network_b.region,
                "vpcId": self.network_b.vpc_id,
                "subnets": dict(self.network_b.subnet_ids),
            },
        }


def regional_name(region: str) -> str:
    """The DNS name of one region's entry (`us-east-1.shop.sandbox.stormdrill.test.`)."""
    return f"{region}.{HOSTED_ZONE}"


def health_path(region: str) -> str:
    """The path of a region's entry health, which its Route 53 health check requests."""
    return f"/regions/{region}/healthz"


# ---- region B's Kubernetes cluster -----------------------------------------------------------


def _copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object as a client would create it: no server-set metadata and no status."""
    meta = obj.get("metadata") or {}
    metadata = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}
    return {"metadata": metadata, **json.loads(json.dumps(body))}


def seed_cluster(
    target: store.ClusterStore, *, region: str, zones: Sequence[str], nodes: int = 6
) -> None:
    """The shop of docs/sandbox-world.md in `region`: nodes in `zones`, settled; no orchestrator.

    Workloads, budgets and RBAC are copied from region A's seed (`seed.seed_shop`), so the two
    regions stay the same shop; nodes carry `region`'s topology labels.
    """
    template = store.ClusterStore()
    seed.seed_shop(template)
    for name in _NAMESPACES:
        labels = {seed.ALLOW_DRILLS_LABEL: "true"} if name == seed.SHOP_NAMESPACE else {}
        seed.ensure_namespace(target, name, labels=labels)
    for i in range(nodes):
        zone = zones[i % len(zones)]
        node = seed.node_object(f"node-{zone}-{i // len(zones) + 1}", zone=zone, index=i)
        metadata = node["metadata"]
        assert isinstance(metadata, dict)
        metadata["labels"][REGION_LABEL] = region
        target.create(resource=resources.NODES, obj=node)
    for kind in _CLONED:
        for obj in template.list(resource=kind):
            namespace = (obj.get("metadata") or {}).get("namespace")  # type: ignore[attr-defined]
            if namespace not in (None, *_NAMESPACES):
                continue
            target.create(resource=kind, obj=_copy(obj))
    settle = controller.Controller(target)
    settle.reconcile_once()
    settle.reconcile_once()


# ---- region B's AWS network and the failover objects -----------------------------------------


def _tag_spec(resource: str, tags: list[TagTypeDef]) -> list[TagSpecificationTypeDef]:
    return [{"ResourceType": resource, "Tags": tags}]  # type: ignore[typeddict-item]


def _seed_network_b(ec2: EC2Client) -> tuple[str, dict[str, str], str]:
    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR_B,
        TagSpecifications=_tag_spec("vpc", [{"Key": "Name", "Value": "shop"}]),
    )["Vpc"]["VpcId"]
    subnet_ids: dict[str, str] = {}
    for zone in ZONES_B:
        tags: list[TagTypeDef] = [
            {"Key": "Name", "Value": f"shop-{zone}"},
            {"Key": aws.OPT_IN_TAG, "Value": "true"},
        ]
        subnet_ids[zone] = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=SUBNET_CIDRS_B[zone],
            AvailabilityZone=zone,
            TagSpecifications=_tag_spec("subnet", tags),
        )["Subnet"]["SubnetId"]
    acls = ec2.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"]
    if not acls:
        raise errors.SandboxError(f"moto: VPC {vpc_id} in {REGION_B} has no default network ACL")
    return vpc_id, subnet_ids, acls[0]["NetworkAclId"]


def seed_region_b_aws(*, endpoint_url: str) -> RegionNetwork:
    """Region B's VPC `10.1.0.0/16` (`Name=shop`), one opted-in subnet per zone, `shop-db`."""
    sess = aws.session(region=REGION_B)
    vpc_id, subnet_ids, acl_id = _seed_network_b(sess.client("ec2", endpoint_url=endpoint_url))
    sess.client("rds", endpoint_url=endpoint_url).create_db_subnet_group(
        DBSubnetGroupName=aws.DB_SUBNET_GROUP,
        DBSubnetGroupDescription="shop databases",
        SubnetIds=[subnet_ids[z] for z in ZONES_B],
    )
    log.info("seeded region %s (vpc %s) into %s", REGION_B, vpc_id, endpoint_url)
    return RegionNetwork(
        region=REGION_B,
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        default_network_acl_id=acl_id,
        db_subnet_group=aws.DB_SUBNET_GROUP,
    )


def _seed_aurora(*, endpoint_url: str) -> None:
    tags = [{"Key": "app", "Value": "payments"}, {"Key": aws.OPT_IN_TAG, "Value": "true"}]
    primary: RDSClient = aws.session(region=REGION_A).client("rds", endpoint_url=endpoint_url)
    arn = primary.create_db_cluster(
        DBClusterIdentifier=AURORA_CLUSTER_IDS[REGION_A],
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="payments",
        MasterUserPassword="sandbox-only-password",
        DBSubnetGroupName=aws.DB_SUBNET_GROUP,
        Tags=tags,  # type: ignore[arg-type]
    )["DBCluster"]["DBClusterArn"]
    primary.create_global_cluster(
        GlobalClusterIdentifier=GLOBAL_CLUSTER_ID, SourceDBClusterIdentifier=arn
    )
    secondary: RDSClient = aws.session(region=REGION_B).client("rds", endpoint_url=endpoint_url)
    secondary.create_db_cluster(
        DBClusterIdentifier=AURORA_CLUSTER_IDS[REGION_B],
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        GlobalClusterIdentifier=GLOBAL_CLUSTER_ID,
        DBSubnetGroupName=aws.DB_SUBNET_GROUP,
        Tags=tags,  # type: ignore[arg-type]
    )


def _route53(endpoint_url: str) -> Any:
    """A Route 53 client (no type stubs for it are installed, hence `Any`)."""
    return aws.session(region=REGION_A).client("route53", endpoint_url=endpoint_url)


def _seed_health_check(r53: Any, *, region: str, host: str, port: int) -> str:
    check_id: str = r53.create_health_check(
        CallerReference=f"stormdrill-sandbox-{region}",
        HealthCheckConfig={
            "Type": "HTTP",
            "IPAddress": host,
            "Port": port,
            "ResourcePath": health_path(region),
            "RequestInterval": 10,
            "FailureThreshold": 1,
        },
    )["HealthCheck"]["Id"]
    r53.change_tags_for_resource(
        ResourceType="healthcheck",
        ResourceId=check_id,
        AddTags=[
            {"Key": "Name", "Value": f"shop-{region}"},
            {"Key": "region", "Value": region},
            {"Key": aws.OPT_IN_TAG, "Value": "true"},
        ],
    )
    return check_id


def _record(name: str, kind: str, value: str, **extra: str) -> dict[str, Any]:
    return {
        "Action": "CREATE",
        "ResourceRecordSet": {
            "Name": name,
            "Type": kind,
            "TTL": 60,
            "ResourceRecords": [{"Value": value}],
            **extra,
        },
    }


def seed_failover(*, endpoint_url: str, entry_host: str, entry_port: int) -> Failover:
    """Health checks, the hosted zone with its failover pair, and the Aurora global cluster.

    The health checks request `http://entry_host:entry_port/regions/<region>/healthz` (the
    global entry point answers those paths); the PRIMARY record points at region A's entry.
    """
    r53 = _route53(endpoint_url)
    checks = {
        region: _seed_health_check(r53, region=region, host=entry_host, port=entry_port)
        for region in (REGION_A, REGION_B)
    }
    zone_id: str = r53.create_hosted_zone(
        Name=HOSTED_ZONE, CallerReference="stormdrill-sandbox-shop"
    )["HostedZone"]["Id"]
    changes = [_record(regional_name(r), "A", entry_host) for r in (REGION_A, REGION_B)]
    for role, region in ((FailoverRole.PRIMARY, REGION_A), (FailoverRole.SECONDARY, REGION_B)):
        changes.append(
            _record(
                GLOBAL_RECORD,
                "CNAME",
                regional_name(region),
                SetIdentifier=region,
                Failover=role.value,
                HealthCheckId=checks[region],
            )
        )
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    _seed_aurora(endpoint_url=endpoint_url)
    log.info("seeded failover %s → %s", GLOBAL_RECORD, ", ".join(checks))
    return Failover(
        hosted_zone_id=zone_id,
        record_name=GLOBAL_RECORD,
        health_check_ids=checks,
        global_cluster_id=GLOBAL_CLUSTER_ID,
        aurora_cluster_ids=dict(AURORA_CLUSTER_IDS),
    )


# ---- the global entry point -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Which failover record the global name resolves to now, and why."""

    region: str
    role: FailoverRole
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer of the entry point: status code, JSON body and the region it came from."""

    code: int
    body: Mapping[str, Any]
    region: str | None


class _Unavailable(errors.SandboxError):
    """A part the entry point reads (moto, a region's API server) did not answer usably."""


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class GlobalEntryPoint:
    """The shop's global front door on loopback; `start()`, then `url`; `stop()` ends it.

    `apis` maps each region to its Kubernetes API server URL; the failover records and health
    checks are read from the moto at `endpoint_url` (hosted zone `HOSTED_ZONE`).
    """

    def __init__(self, *, endpoint_url: str, apis: Mapping[str, str], host: str) -> None:
        self._apis = dict(apis)
        self._r53 = _route53(endpoint_url)
        self._host = host
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions this entry point routes between, PRIMARY's first."""
        return tuple(self._apis)

    @property
    def port(self) -> int:
        if self._server is None:
            raise errors.SandboxNotStarted("GlobalEntryPoint.port: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Listen on a free loopback port and serve in a daemon thread."""
        if self._server is not None:
            return
        entry = self

        class Handler(_Handler):
            owner = entry

        srv = http.server.ThreadingHTTPServer((self._host, 0), Handler)
        srv.daemon_threads = True
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, name="global-entry", daemon=True)
        self._thread.start()
        log.info("global entry point listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- reading the world --------------------------------------------------------------------

    def web_ready(self, region: str) -> int:
        """Ready `web` pods in `shop`, as `region`'s Kubernetes API server lists them."""
        api = self._apis.get(region)
        if api is None:
            raise _Unavailable(f"no Kubernetes API server for region {region}")
        query = urllib.parse.urlencode({"labelSelector": WEB_SELECTOR})
        request = urllib.request.Request(
            f"{api}/api/v1/namespaces/{seed.SHOP_NAMESPACE}/pods?{query}",
            headers={"Authorization": "Bearer sandbox-token", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S) as answer:
                pods = json.loads(answer.read()).get("items") or []
        except (OSError, ValueError) as exc:
            raise _Unavailable(f"{region}'s Kubernetes API server at {api}: {exc}") from exc
        return sum(1 for pod in pods if _is_ready(pod))

    def _check_passes(self, check_id: str) -> tuple[bool, str]:
        try:
            config = self._r53.get_health_check(HealthCheckId=check_id)["HealthCheck"][
                "HealthCheckConfig"
            ]
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            return False, f"health check {check_id} could not be read: {exc}"
        if config.get("Inverted"):
            return False, f"health check {check_id} is inverted"
        scheme = "https" if config.get("Type") == "HTTPS" else "http"
        target = f"{scheme}://{config.get('IPAddress')}:{config.get('Port')}"
        url = target + str(config.get("ResourcePath") or "/")
        try:
            with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as answer:
                ok = 200 <= answer.status < 400
                return ok, f"health check {check_id}: {url} answered {answer.status}"
        except urllib.error.HTTPError as exc:
            return False, f"health check {check_id}: {url} answered {exc.code}"
        except OSError as exc:
            return False, f"health check {check_id}: {url} failed: {exc}"

    def _failover_records(self) -> dict[FailoverRole, Mapping[str, Any]]:
        try:
            zones = self._r53.list_hosted_zones_by_name(DNSName=HOSTED_ZONE)["HostedZones"]
            zone = next(z for z in zones if z["Name"] == HOSTED_ZONE)
            sets = self._r53.list_resource_record_sets(
                HostedZoneId=zone["Id"], StartRecordName=GLOBAL_RECORD
            )["ResourceRecordSets"]
        except StopIteration as exc:
            raise _Unavailable(f"no hosted zone {HOSTED_ZONE} in moto") from exc
        except (boto_errors.BotoCoreError, boto_errors.ClientError) as exc:
            raise _Unavailable(f"Route 53 (moto) could not be read: {exc}") from exc
        return {
            FailoverRole(rec["Failover"]): rec
            for rec in sets
            if rec.get("Name") == GLOBAL_RECORD and rec.get("Failover")
        }

    def _region_of(self, record: Mapping[str, Any]) -> str:
        values = [str(v.get("Value", "")) for v in record.get("ResourceRecords") or []]
        for region in self._apis:
            if any(v.rstrip(".") == regional_name(region).rstrip(".") for v in values):
                return region
        raise _Unavailable(f"record {GLOBAL_RECORD} {record.get('Failover')} points at {values}")

    def resolve(self) -> Resolution:
        """The record Route 53 would answer: the first healthy of PRIMARY, SECONDARY."""
        records = self._failover_records()
        if FailoverRole.PRIMARY not in records:
            raise _Unavailable(f"no PRIMARY failover record {GLOBAL_RECORD}")
        reasons: list[str] = []
        for role in FailoverRole:
            record = records.get(role)
            if record is None:
                continue
            check_id = record.get("HealthCheckId")
            if check_id is None:
                return Resolution(self._region_of(record), role, tuple(reasons))
            passes, why = self._check_passes(str(check_id))
            if passes:
                return Resolution(self._region_of(record), role, tuple(reasons))
            reasons.append(f"{role.value}: {why}")
        reasons.append("every failover record is unhealthy; Route 53 answers the PRIMARY")
        primary = records[FailoverRole.PRIMARY]
        return Resolution(self._region_of(primary), FailoverRole.PRIMARY, tuple(reasons))

    # ---- answers ------------------------------------------------------------------------------

    def regional_health(self, region: str) -> Answer:
        try:
            ready = self.web_ready(region)
        except _Unavailable as exc:
            return Answer(
                503, {"status": "degraded", "region": region, "reasons": [str(exc)]}, region
            )
        if ready < 1:
            reason = f"no Ready web pod in namespace {seed.SHOP_NAMESPACE} of {region}"
            return Answer(
                503, {"status": "degraded", "region": region, "reasons": [reason]}, region
            )
        return Answer(
            200, {"status": "ok", "region": region, "service": "web", "ready": ready}, region
        )

    def global_answer(self, *, page: bool) -> Answer:
        try:
            where = self.resolve()
        except _Unavailable as exc:
            return Answer(
                503, {"status": "unavailable", "region": None, "reasons": [str(exc)]}, None
            )
        regional = self.regional_health(where.region)
        body = dict(regional.body)
        body["record"] = where.role.value
        body["failover"] = list(where.reasons)
        if page and regional.code == 200:
            body["page"] = "shop"
            body["title"] = f"The shop (served from {where.region})"
        return Answer(regional.code, body, where.region)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: GlobalEntryPoint

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("global entry %s", format % args)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"
        regions = {health_path(r): r for r in self.owner.regions}
        if path == "/global/healthz":
            answer = self.owner.global_answer(page=False)
        elif path in ("/global", "/global/shop"):
            answer = self.owner.global_answer(page=True)
        elif path in regions:
            answer = self.owner.regional_health(regions[path])
        else:
            known = ["/global/healthz", "/global/shop", *regions]
            answer = Answer(404, {"error": f"no page {path}; try one of {known}"}, None)
        payload = json.dumps(answer.body, separators=(",", ":")).encode()
        self.send_response(answer.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if answer.region is not None:
            self.send_header(REGION_HEADER, answer.region)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload)
