"""AWS sandbox: moto's threaded server on loopback and the shop world seeded into it.

`MotoSandbox` owns one `moto.server.ThreadedMotoServer` bound to a free loopback port;
`seed_shop_aws` creates the AWS half of docs/sandbox-world.md through ordinary boto3
clients pointed at that server with `endpoint_url`, so production code reaches the
sandbox with nothing more than the Environment's `aws.endpointUrl`.

Invariants:
- Credentials are dummy values passed explicitly to the boto3 session; `os.environ` is
  never touched.
- moto keeps its backends in process-wide state: every `MotoSandbox` in one process
  serves the *same* accounts and resources (ports differ, data does not), and `reset()`
  clears all of them.
- moto 5.2.5 does not evaluate CloudWatch alarms against metrics; alarms stay in the
  state they were created or last set in (`set_alarm_state` drives them in tests).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

import boto3
from moto import server as moto_server

from sandbox import errors

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef, TagTypeDef
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_rds import RDSClient

log = logging.getLogger(__name__)

REGION: Final = "us-east-1"
ZONES: Final = ("us-east-1a", "us-east-1b", "us-east-1c")
SUBNET_CIDRS: Final = {
    "us-east-1a": "10.0.1.0/24",
    "us-east-1b": "10.0.2.0/24",
    "us-east-1c": "10.0.3.0/24",
}
VPC_CIDR: Final = "10.0.0.0/16"
VENDOR_CIDR: Final = "203.0.113.0/24"
ASG_NAME: Final = "shop-web-asg"
LAUNCH_TEMPLATE_NAME: Final = "shop-web"
RDS_ID: Final = "payments-db"
DB_SUBNET_GROUP: Final = "shop-db"
PAYMENTS_SG_NAME: Final = "shop-payments"
IAM_USERS: Final = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")
PROTECTED_PRINCIPALS: Final = ("frank",)
ALARM_NAMES: Final = ("checkout-5xx-high", "payments-latency-high")
OPT_IN_TAG: Final = "stormdrill:allow"
# moto's fixed AMI catalogue contains this id in every region (Amazon Linux 2).
AMI_ID: Final = "ami-12c6146b"

DUMMY_CREDENTIALS: Final = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


@dataclass(frozen=True)
class AwsSeed:
    """The ids of everything `seed_shop_aws` created (zones map to ids)."""

    region: str
    vpc_id: str
    subnet_ids: Mapping[str, str]
    default_network_acl_id: str
    instance_ids: Mapping[str, tuple[str, ...]]
    bastion_id: str
    launch_template_id: str
    asg_name: str
    rds_id: str
    db_subnet_group: str
    security_group_ids: Mapping[str, str]
    iam_users: tuple[str, ...]
    access_key_ids: Mapping[str, str]
    protected_principals: tuple[str, ...]
    alarm_names: tuple[str, ...]


class MotoSandbox:
    """One moto server on loopback; a context manager (`with MotoSandbox() as moto:`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: moto_server.ThreadedMotoServer | None = None
        self._bound: tuple[str, int] | None = None

    def start(self) -> None:
        """Start serving; with port 0 the OS picks a free port (see `endpoint_url`)."""
        if self._server is not None:
            return
        _quiet_request_log()
        srv = moto_server.ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        srv.start()
        self._server = srv
        host, port = srv.get_host_and_port()
        self._bound = (host, int(port))
        log.info("moto server listening on %s", self.endpoint_url)

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the socket open.
        inner = getattr(srv, "_server", None)
        if inner is not None:
            inner.server_close()
        log.info("moto server on %s stopped", self.endpoint_url)

    @property
    def endpoint_url(self) -> str:
        """`http://host:port` of the running server."""
        if self._bound is None:
            raise errors.SandboxNotStarted("MotoSandbox.endpoint_url: call start() first")
        host, port = self._bound
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every resource in every account and region (POST /moto-api/reset)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise errors.SandboxError(
                    f"moto reset at {self.endpoint_url}: HTTP {resp.status}; restart the sandbox"
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


def _quiet_request_log() -> None:
    """Keep werkzeug's per-request lines out of the console unless logging was configured."""
    wz = logging.getLogger("werkzeug")
    if wz.level == logging.NOTSET:
        wz.setLevel(logging.WARNING)


def session(*, region: str = REGION) -> boto3.session.Session:
    """A boto3 session with dummy credentials, independent of the process environment."""
    return boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        aws_session_token=DUMMY_CREDENTIALS["aws_session_token"],
        region_name=region,
    )


def _tags(**pairs: str) -> list[TagTypeDef]:
    return [{"Key": k.replace("__", ":"), "Value": v} for k, v in pairs.items()]


def _tag_spec(resource: str, tags: list[TagTypeDef]) -> list[TagSpecificationTypeDef]:
    return [{"ResourceType": resource, "Tags": tags}]  # type: ignore[typeddict-item]


@dataclass(frozen=True)
class _Network:
    vpc_id: str
    subnet_ids: dict[str, str]
    default_network_acl_id: str


def _seed_network(ec2: EC2Client) -> _Network:
    vpc = ec2.create_vpc(
        CidrBlock=VPC_CIDR, TagSpecifications=_tag_spec("vpc", [{"Key": "Name", "Value": "shop"}])
    )["Vpc"]
    vpc_id = vpc["VpcId"]
    subnet_ids: dict[str, str] = {}
    for zone in ZONES:
        tags: list[TagTypeDef] = [
            {"Key": "Name", "Value": f"shop-{zone}"},
            {"Key": OPT_IN_TAG, "Value": "true"},
        ]
        subnet = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=SUBNET_CIDRS[zone],
            AvailabilityZone=zone,
            TagSpecifications=_tag_spec("subnet", tags),
        )["Subnet"]
        subnet_ids[zone] = subnet["SubnetId"]
    acls = ec2.describe_network_acls(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "default", "Values": ["true"]},
        ]
    )["NetworkAcls"]
    if not acls:
        raise errors.SandboxError(f"moto: VPC {vpc_id} has no default network ACL")
    return _Network(vpc_id, subnet_ids, acls[0]["NetworkAclId"])


def _seed_instances(ec2: EC2Client, net: _Network) -> tuple[dict[str, tuple[str, ...]], str]:
    by_zone: dict[str, tuple[str, ...]] = {}
    for zone in ZONES:
        tags: list[TagTypeDef] = [
            {"Key": "Name", "Value": f"checkout-{zone}"},
            {"Key": "app", "Value": "checkout"},
            {"Key": OPT_IN_TAG, "Value": "true"},
        ]
        resp = ec2.run_instances(
            ImageId=AMI_ID,
            InstanceType="m5.large",
            MinCount=2,
            MaxCount=2,
            SubnetId=net.subnet_ids[zone],
            TagSpecifications=_tag_spec("instance", tags),
        )
        by_zone[zone] = tuple(i["InstanceId"] for i in resp["Instances"])
    bastion = ec2.run_instances(
        ImageId=AMI_ID,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=net.subnet_ids[ZONES[0]],
        TagSpecifications=_tag_spec(
            "instance", [{"Key": "Name", "Value": "bastion"}, {"Key": "app", "Value": "bastion"}]
        ),
    )["Instances"][0]["InstanceId"]
    return by_zone, bastion


def _seed_security_groups(ec2: EC2Client, net: _Network) -> dict[str, str]:
    sg_id = ec2.create_security_group(
        GroupName=PAYMENTS_SG_NAME,
        Description="payments service: vendor and database egress",
        VpcId=net.vpc_id,
        TagSpecifications=_tag_spec("security-group", [{"Key": "Name", "Value": PAYMENTS_SG_NAME}]),
    )["GroupId"]
    # A new group allows all egress; the shop's payments group allows only what it needs.
    group = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
    allow_all = [
        rule
        for rule in group.get("IpPermissionsEgress", [])
        if rule.get("IpProtocol") == "-1"
        and any(r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", []))
    ]
    if allow_all:
        ec2.revoke_security_group_egress(
            GroupId=sg_id,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
    ec2.authorize_security_group_egress(
        GroupId=sg_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": VENDOR_CIDR, "Description": "payprovider"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5432,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "postgres"}],
            },
        ],
    )
    return {PAYMENTS_SG_NAME: sg_id}


def _seed_asg(ec2: EC2Client, asg: AutoScalingClient, net: _Network) -> str:
    lt_id = ec2.create_launch_template(
        LaunchTemplateName=LAUNCH_TEMPLATE_NAME,
        LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "m5.large"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName=ASG_NAME,
        LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "$Latest"},
        MinSize=3,
        MaxSize=6,
        DesiredCapacity=3,
        VPCZoneIdentifier=",".join(net.subnet_ids[z] for z in ZONES),
        Tags=[
            {
                "Key": "app",
                "Value": "web",
                "PropagateAtLaunch": True,
                "ResourceId": ASG_NAME,
                "ResourceType": "auto-scaling-group",
            },
            {
                "Key": OPT_IN_TAG,
                "Value": "true",
                "PropagateAtLaunch": True,
                "ResourceId": ASG_NAME,
                "ResourceType": "auto-scaling-group",
            },
        ],
    )
    return lt_id


def _seed_rds(rds: RDSClient, net: _Network, sg_ids: Mapping[str, str]) -> None:
    rds.create_db_subnet_group(
        DBSubnetGroupName=DB_SUBNET_GROUP,
        DBSubnetGroupDescription="shop databases",
        SubnetIds=[net.subnet_ids[z] for z in ZONES],
    )
    rds.create_db_instance(
        DBInstanceIdentifier=RDS_ID,
        DBInstanceClass="db.m5.large",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="payments",
        MasterUserPassword="sandbox-only-password",
        MultiAZ=True,
        AvailabilityZone=ZONES[0],
        DBSubnetGroupName=DB_SUBNET_GROUP,
        VpcSecurityGroupIds=[sg_ids[PAYMENTS_SG_NAME]],
        Tags=[{"Key": "app", "Value": "payments"}, {"Key": OPT_IN_TAG, "Value": "true"}],
    )


def _seed_iam(iam: IAMClient) -> dict[str, str]:
    keys: dict[str, str] = {}
    for user in IAM_USERS:
        tags = (
            [{"Key": "stormdrill:protected", "Value": "true"}]
            if user in PROTECTED_PRINCIPALS
            else []
        )
        iam.create_user(UserName=user, Tags=tags)  # type: ignore[arg-type]
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    return keys


def _seed_alarms(cw: CloudWatchClient) -> None:
    specs = {
        "checkout-5xx-high": ("Shop", "Checkout5xx", 5.0),
        "payments-latency-high": ("Shop", "PaymentsLatencyP99", 800.0),
    }
    for name in ALARM_NAMES:
        namespace, metric, threshold = specs[name]
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace=namespace,
            MetricName=metric,
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=threshold,
            ComparisonOperator="GreaterThanThreshold",
        )
        # New alarms start INSUFFICIENT_DATA; the world says OK, and moto never evaluates.
        cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox seed")


def seed_shop_aws(*, endpoint_url: str, region: str = REGION) -> AwsSeed:
    """Create the shop's AWS resources (docs/sandbox-world.md) in the moto at `endpoint_url`.

    Not idempotent: seeding twice without a `reset()` in between fails on duplicate names.
    """
    sess = session(region=region)
    ec2 = sess.client("ec2", endpoint_url=endpoint_url)
    net = _seed_network(ec2)
    instance_ids, bastion_id = _seed_instances(ec2, net)
    sg_ids = _seed_security_groups(ec2, net)
    lt_id = _seed_asg(ec2, sess.client("autoscaling", endpoint_url=endpoint_url), net)
    _seed_rds(sess.client("rds", endpoint_url=endpoint_url), net, sg_ids)
    keys = _seed_iam(sess.client("iam", endpoint_url=endpoint_url))
    _seed_alarms(sess.client("cloudwatch", endpoint_url=endpoint_url))
    log.info("seeded shop AWS world (vpc %s) into %s", net.vpc_id, endpoint_url)
    return AwsSeed(
        region=region,
        vpc_id=net.vpc_id,
        subnet_ids=dict(net.subnet_ids),
        default_network_acl_id=net.default_network_acl_id,
        instance_ids=instance_ids,
        bastion_id=bastion_id,
        launch_template_id=lt_id,
        asg_name=ASG_NAME,
        rds_id=RDS_ID,
        db_subnet_group=DB_SUBNET_GROUP,
        security_group_ids=sg_ids,
        iam_users=IAM_USERS,
        access_key_ids=keys,
        protected_principals=PROTECTED_PRINCIPALS,
        alarm_names=ALARM_NAMES,
    )
