"""The moto sandbox: the shop's AWS world is seeded, visible to boto3, resettable."""

from __future__ import annotations

import botocore.exceptions
import pytest

from sandbox import aws, errors


def _client(service: str, endpoint_url: str):  # type: ignore[no-untyped-def]
    return aws.session().client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def test_seeded_vpc_and_subnets_are_described_per_zone(
    aws_seed: aws.AwsSeed, aws_endpoint_url: str
) -> None:
    ec2 = _client("ec2", aws_endpoint_url)
    vpc = ec2.describe_vpcs(VpcIds=[aws_seed.vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert {"Key": "Name", "Value": "shop"} in vpc["Tags"]

    subnets = ec2.describe_subnets(Filters=[{"Name": "tag:stormdrill:allow", "Values": ["true"]}])
    by_zone = {s["AvailabilityZone"]: s for s in subnets["Subnets"]}
    assert set(by_zone) == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert by_zone["us-east-1b"]["CidrBlock"] == "10.0.2.0/24"
    assert {"Key": "Name", "Value": "shop-us-east-1c"} in by_zone["us-east-1c"]["Tags"]
    assert {s["SubnetId"] for s in subnets["Subnets"]} == set(aws_seed.subnet_ids.values())

    acl = ec2.describe_network_acls(NetworkAclIds=[aws_seed.default_network_acl_id])
    assert acl["NetworkAcls"][0]["VpcId"] == aws_seed.vpc_id


def test_checkout_instances_opt_in_and_bastion_does_not(
    aws_seed: aws.AwsSeed, aws_endpoint_url: str
) -> None:
    ec2 = _client("ec2", aws_endpoint_url)
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:app", "Values": ["checkout"]},
            {"Name": "tag:stormdrill:allow", "Values": ["true"]},
        ]
    )
    instances = [i for r in found["Reservations"] for i in r["Instances"]]
    zones = sorted(i["Placement"]["AvailabilityZone"] for i in instances)
    assert zones == [
        "us-east-1a",
        "us-east-1a",
        "us-east-1b",
        "us-east-1b",
        "us-east-1c",
        "us-east-1c",
    ]

    bastion = ec2.describe_instances(InstanceIds=[aws_seed.bastion_id])["Reservations"][0]
    tags = {t["Key"]: t["Value"] for t in bastion["Instances"][0]["Tags"]}
    assert tags["app"] == "bastion"
    assert "stormdrill:allow" not in tags


def test_asg_rds_security_group_iam_and_alarms_match_the_world(
    aws_seed: aws.AwsSeed, aws_endpoint_url: str
) -> None:
    group = _client("autoscaling", aws_endpoint_url).describe_auto_scaling_groups(
        AutoScalingGroupNames=["shop-web-asg"]
    )["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (3, 6, 3)
    assert set(group["VPCZoneIdentifier"].split(",")) == set(aws_seed.subnet_ids.values())

    db = _client("rds", aws_endpoint_url).describe_db_instances(DBInstanceIdentifier="payments-db")
    instance = db["DBInstances"][0]
    assert instance["Engine"] == "postgres"
    assert instance["MultiAZ"] is True
    assert instance["AvailabilityZone"] == "us-east-1a"
    assert len(instance["DBSubnetGroup"]["Subnets"]) == 3

    ec2 = _client("ec2", aws_endpoint_url)
    sg = ec2.describe_security_groups(GroupIds=[aws_seed.security_group_ids["shop-payments"]])
    egress = sg["SecurityGroups"][0]["IpPermissionsEgress"]
    vendor = [p for p in egress if any(r["CidrIp"] == "203.0.113.0/24" for r in p["IpRanges"])]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in vendor] == [("tcp", 443, 443)]

    iam = _client("iam", aws_endpoint_url)
    users = {u["UserName"] for u in iam.list_users()["Users"]}
    assert users == {"alice", "bob", "carol", "dave", "erin", "frank", "grace"}
    keys = iam.list_access_keys(UserName="frank")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [
        (aws_seed.access_key_ids["frank"], "Active")
    ]

    alarms = _client("cloudwatch", aws_endpoint_url).describe_alarms()["MetricAlarms"]
    assert {a["AlarmName"]: a["StateValue"] for a in alarms} == {
        "checkout-5xx-high": "OK",
        "payments-latency-high": "OK",
    }


def test_reset_clears_the_seed_and_reseeding_works(
    aws_seed: aws.AwsSeed, moto_sandbox: aws.MotoSandbox
) -> None:
    moto_sandbox.reset()
    ec2 = _client("ec2", moto_sandbox.endpoint_url)
    with pytest.raises(botocore.exceptions.ClientError):
        ec2.describe_vpcs(VpcIds=[aws_seed.vpc_id])
    assert _client("iam", moto_sandbox.endpoint_url).list_users()["Users"] == []

    again = aws.seed_shop_aws(endpoint_url=moto_sandbox.endpoint_url)
    assert again.vpc_id != aws_seed.vpc_id
    assert len(ec2.describe_vpcs(VpcIds=[again.vpc_id])["Vpcs"]) == 1


def test_seeding_twice_without_reset_fails_on_duplicates(
    aws_seed: aws.AwsSeed, aws_endpoint_url: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError):
        aws.seed_shop_aws(endpoint_url=aws_endpoint_url)


def test_two_moto_sandboxes_listen_on_different_ports() -> None:
    with aws.MotoSandbox() as first, aws.MotoSandbox() as second:
        assert first.endpoint_url != second.endpoint_url
        sts_first = _client("sts", first.endpoint_url)
        sts_second = _client("sts", second.endpoint_url)
        assert (
            sts_first.get_caller_identity()["Account"]
            == sts_second.get_caller_identity()["Account"]
        )


def test_endpoint_url_before_start_names_the_fix() -> None:
    with pytest.raises(errors.SandboxNotStarted, match="start"):
        _ = aws.MotoSandbox().endpoint_url
