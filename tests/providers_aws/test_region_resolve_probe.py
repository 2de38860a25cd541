"""aws.route53.resolve against moto: failover records answered from their health checks,
before, during and after aws.route53.fail-health-check."""

from __future__ import annotations

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import answering, connecting, route53
from tests.providers_aws import helpers
from tests.providers_aws import region_helpers as r53h


def probe() -> answering.Route53Resolve:
    return answering.Route53Resolve()


def failover_zone(
    conn: connecting.AwsConnection, *, secondary_check: bool = False
) -> tuple[str, str, str | None]:
    """`www.shop.example` A: PRIMARY `us-east-1` (health-checked), SECONDARY `us-west-2`;
    the zone id and the two health check ids."""
    zone = r53h.hosted_zone(conn)
    east = r53h.health_check(conn, fqdn="east.shop.example")
    west = r53h.health_check(conn, fqdn="west.shop.example") if secondary_check else None
    r53h.upsert(
        conn,
        zone,
        r53h.failover_record(
            "PRIMARY", set_identifier="us-east-1", ip=r53h.PRIMARY_IP, check_id=east
        ),
        r53h.failover_record(
            "SECONDARY", set_identifier="us-west-2", ip=r53h.SECONDARY_IP, check_id=west
        ),
    )
    return zone, east, west


def check(ctx: context.RunContext, **params: str) -> tuple[bool, str, object]:
    p = probe()
    result = p.check(ctx, params=p.parse_params({"recordName": r53h.RECORD, **params}))
    return result.ok, result.message, result.value


def test_a_healthy_primary_answers_and_the_probe_holds_for_its_region(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone, east, _ = failover_zone(conn)

    ok, message, value = check(ctx, hostedZoneId=zone, expect="us-east-1")
    wrong, wrong_message, _ = check(ctx, hostedZoneId=zone, expect="us-west-2")

    assert ok and not wrong
    assert message == "www.shop.example. A resolves to us-east-1"
    assert wrong_message == (
        "www.shop.example. A does not resolve to us-west-2: it resolves to us-east-1"
    )
    assert value == {
        "setIdentifier": "us-east-1",
        "failover": "PRIMARY",
        "region": None,
        "values": [r53h.PRIMARY_IP],
        "healthChecks": {east: True},
    }


def test_failing_the_primarys_health_check_moves_the_answer_and_undo_moves_it_back(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone, east, _ = failover_zone(conn)
    act = helpers.action(route53.NAME)
    (token,) = helpers.apply_all(
        act, ctx, helpers.plan(act, ctx, [helpers.ref(route53.KIND, east)])
    )

    during_east, _, _ = check(ctx, zoneName="shop.example.", expect="us-east-1")
    during_west, message, value = check(ctx, zoneName="shop.example", expect="us-west-2")
    by_role, _, _ = check(ctx, zoneName="shop.example", expect="secondary")
    by_value, _, _ = check(ctx, zoneName="shop.example", expect=r53h.SECONDARY_IP)

    assert (during_east, during_west, by_role, by_value) == (False, True, True, True)
    assert message == "www.shop.example. A resolves to us-west-2"
    assert value["healthChecks"] == {east: False}  # type: ignore[index]

    act.revert(ctx, undo=token)

    assert check(ctx, hostedZoneId=zone, expect="us-east-1")[0]


def test_both_unhealthy_answers_the_primary_as_route53_does(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone, east, west = failover_zone(conn, secondary_check=True)
    assert west is not None
    for check_id in (east, west):
        r53h.r53(conn).update_health_check(HealthCheckId=check_id, Inverted=True)

    ok, _, value = check(ctx, hostedZoneId=zone, expect="us-east-1")

    assert ok
    assert value["healthChecks"] == {east: False, west: False}  # type: ignore[index]


def test_a_disabled_check_counts_healthy_unless_it_is_also_inverted(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone, east, _ = failover_zone(conn)
    r53h.r53(conn).update_health_check(HealthCheckId=east, Disabled=True)
    assert check(ctx, hostedZoneId=zone, expect="us-east-1")[0]

    r53h.r53(conn).update_health_check(HealthCheckId=east, Inverted=True)

    assert check(ctx, hostedZoneId=zone, expect="us-west-2")[0]


def test_a_simple_record_answers_its_own_value(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone = r53h.hosted_zone(conn)
    r53h.upsert(
        conn,
        zone,
        {
            "Name": r53h.RECORD,
            "Type": "CNAME",
            "TTL": 60,
            "ResourceRecords": [{"Value": "shop-east.elb.example."}],
        },
    )

    assert check(ctx, hostedZoneId=zone, recordType="CNAME", expect="shop-east.elb.example")[0]
    assert not check(ctx, hostedZoneId=zone, recordType="CNAME", expect="shop-west.elb.example")[0]


def test_weighted_records_are_refused_naming_the_policy(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone = r53h.hosted_zone(conn)
    r53h.upsert(
        conn,
        zone,
        *(
            {
                "Name": r53h.RECORD,
                "Type": "A",
                "SetIdentifier": ident,
                "Weight": 50,
                "TTL": 60,
                "ResourceRecords": [{"Value": ip}],
            }
            for ident, ip in (("a", r53h.PRIMARY_IP), ("b", r53h.SECONDARY_IP))
        ),
    )

    with pytest.raises(errors.ProviderPermanent, match="routing policy weighted is not evaluated"):
        check(ctx, hostedZoneId=zone, expect="a")


def test_a_missing_record_zone_or_health_check_is_a_permanent_error(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    zone, east, _ = failover_zone(conn)

    with pytest.raises(errors.ProviderPermanent, match="no such record"):
        check(ctx, hostedZoneId=zone, recordType="AAAA", expect="us-east-1")
    with pytest.raises(errors.ProviderPermanent, match=r"no hosted zone named other\.example\."):
        check(ctx, zoneName="other.example", expect="us-east-1")
    r53h.r53(conn).delete_health_check(HealthCheckId=east)
    with pytest.raises(errors.ProviderPermanent, match=f"health check {east} does not exist"):
        check(ctx, hostedZoneId=zone, expect="us-east-1")


def test_params_need_exactly_one_zone_and_an_expectation() -> None:
    with pytest.raises(errors.InvalidParams, match="hostedZoneId' or 'zoneName"):
        probe().parse_params({"recordName": r53h.RECORD, "expect": "us-east-1"})
    with pytest.raises(errors.InvalidParams, match="expect"):
        probe().parse_params({"recordName": r53h.RECORD, "zoneName": "shop.example"})


def test_probe_is_registered_by_the_plugin() -> None:
    reg = helpers.registry_with_aws()

    assert reg.get_probe(answering.NAME) is answering.Route53Resolve
    assert answering.NAME in reg.catalog().probes
